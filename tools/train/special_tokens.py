"""Special tokens of the tidal-code tokenizer, in the naming Qwen2.5-Coder uses for FIM and
repository-level code, and ChatML for chat. Their ids are fixed by this order (0, 1, 2, ...)."""

END_OF_TEXT = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
FIM_PREFIX = "<|fim_prefix|>"
FIM_MIDDLE = "<|fim_middle|>"
FIM_SUFFIX = "<|fim_suffix|>"
FIM_PAD = "<|fim_pad|>"
REPO_NAME = "<|repo_name|>"
FILE_SEP = "<|file_sep|>"

SPECIAL_TOKENS = [END_OF_TEXT, IM_START, IM_END, FIM_PREFIX, FIM_MIDDLE, FIM_SUFFIX, FIM_PAD,
                  REPO_NAME, FILE_SEP]

# ChatML: <|im_start|>role\ncontent<|im_end|>\n per message; an optional generation prompt opens
# the assistant turn. A system message is used only when the conversation brings one.
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}"
    "{{- '<|im_start|>assistant\\n' }}"
    "{%- endif %}"
)
