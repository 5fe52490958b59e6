// The lifecycle of the extension's parts, after VS Code's own (base/common/lifecycle.ts): a part
// extends Disposable and _registers what it creates (listeners, providers, commands, child
// parts); disposing it disposes those, newest first. The extension holds one root part on
// context.subscriptions.

export interface IDisposable {
  dispose(): unknown;
}

export abstract class Disposable implements IDisposable {
  private readonly registered: IDisposable[] = [];
  private disposed = false;

  /** Takes `value` along: it is disposed with this part (at once, if this part already is). */
  protected _register<T extends IDisposable>(value: T): T {
    if (this.disposed) value.dispose();
    else this.registered.push(value);
    return value;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    // Newest first: a part registered later may use one registered before it.
    for (const value of this.registered.splice(0).reverse()) {
      try {
        value.dispose();
      } catch {
        // One part that fails to dispose must not keep the others alive.
      }
    }
  }
}
