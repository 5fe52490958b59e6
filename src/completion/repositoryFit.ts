// The repository part of a completion prompt, sized so that the file being edited does not eat
// into it. The repository context counts the active file against its budget (it is the most
// relevant file), but a completion leaves it out: its text goes into the prompt as prefix and
// suffix instead. So the snapshot is asked for the budget plus the active file's estimated
// tokens, rounded down to a step (a budget that moves with every keystroke would move the end
// of the background files too), and asked again with less if that overshoots.

export interface SizedFiles {
  /** Tokens of the files returned. */
  tokens: number;
}

export const ACTIVE_FILE_STEP_TOKENS = 256;

export async function fitRepository<T extends SizedFiles>(
  budgetTokens: number,
  activeFileTokensEstimate: number,
  snapshot: (budgetTokens: number) => Promise<T>,
): Promise<T> {
  const budget = Math.max(0, Math.floor(budgetTokens));
  let extra = Math.floor(Math.max(0, activeFileTokensEstimate) / ACTIVE_FILE_STEP_TOKENS) * ACTIVE_FILE_STEP_TOKENS;
  for (let attempt = 0; attempt < 3 && extra > 0; attempt++) {
    const files = await snapshot(budget + extra);
    if (files.tokens <= budget) return files;
    extra -= Math.ceil((files.tokens - budget) / ACTIVE_FILE_STEP_TOKENS) * ACTIVE_FILE_STEP_TOKENS;
  }
  return snapshot(budget);
}
