// OpenAI `stop` strings over streamed text: text is passed on as it comes, except a tail that
// could still be the start of a stop string, which waits for the next chunk.
export class StopSequenceFilter {
  private pending = '';
  private done = false;

  constructor(private readonly stops: string[]) {}

  get stopped(): boolean {
    return this.done;
  }

  // The text that can be sent now; after a stop string is seen, nothing more.
  push(chunk: string): string {
    if (this.done) return '';
    if (this.stops.length === 0) return chunk;
    const text = this.pending + chunk;
    let cut = -1;
    for (const stop of this.stops) {
      const at = text.indexOf(stop);
      if (at >= 0 && (cut < 0 || at < cut)) cut = at;
    }
    if (cut >= 0) {
      this.done = true;
      this.pending = '';
      return text.slice(0, cut);
    }
    // Hold back the longest tail that is a proper prefix of some stop string.
    let hold = 0;
    for (const stop of this.stops) {
      for (let length = Math.min(stop.length - 1, text.length); length > hold; length--) {
        if (text.endsWith(stop.slice(0, length))) {
          hold = length;
          break;
        }
      }
    }
    this.pending = text.slice(text.length - hold);
    return text.slice(0, text.length - hold);
  }

  // What was held back, once the generation ended without reaching a stop string.
  flush(): string {
    const rest = this.done ? '' : this.pending;
    this.pending = '';
    return rest;
  }
}
