// Chat panel script (runs in the webview; talks to src/extension/chatViewProvider.ts).
// @ts-check
(function () {
  // @ts-ignore acquireVsCodeApi is provided by the webview host.
  const vscode = acquireVsCodeApi();
  const messages = /** @type {HTMLElement} */ (document.getElementById('messages'));
  const empty = /** @type {HTMLElement} */ (document.getElementById('empty'));
  const engine = /** @type {HTMLElement} */ (document.getElementById('engine'));
  const form = /** @type {HTMLFormElement} */ (document.getElementById('composer'));
  const input = /** @type {HTMLTextAreaElement} */ (document.getElementById('input'));

  /** Adds one message bubble; text is inserted as text, never as HTML. */
  function addMessage(kind, text) {
    empty.hidden = true;
    const bubble = document.createElement('article');
    bubble.className = `message ${kind}`;
    const who = document.createElement('div');
    who.className = 'who';
    who.textContent = kind === 'user' ? 'You' : kind === 'error' ? 'Tidal — error' : 'Tidal';
    const body = document.createElement('div');
    body.className = 'body';
    body.textContent = text;
    bubble.append(who, body);
    messages.append(bubble);
    bubble.scrollIntoView({ block: 'end' });
  }

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    vscode.postMessage({ type: 'ask', text });
    input.value = '';
  });
  input.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && !event.shiftKey) {
      event.preventDefault();
      form.requestSubmit();
    }
  });

  window.addEventListener('message', (event) => {
    const message = event.data;
    switch (message.type) {
      case 'engine':
        engine.textContent = message.summary;
        break;
      case 'user':
      case 'answer':
      case 'error':
        addMessage(message.type, message.text);
        break;
    }
  });

  vscode.postMessage({ type: 'ready' });
})();
