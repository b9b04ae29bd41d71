/**
 * Exponential backoff with jitter, the one used for every retry here (the client moving to
 * the next endpoint, a peer connection reconnecting): the first delay is `initialMs`, each
 * next one doubles up to `maxMs`, and each is spread by ±20% so that many waiters do not
 * retry in step.
 */
export class Backoff {
  private current: number;

  constructor(
    private readonly initialMs: number,
    private readonly maxMs: number,
    private readonly random: () => number = Math.random,
  ) {
    this.current = initialMs;
  }

  /** The next delay, in ms; the one after it doubles. */
  next(): number {
    const delay = Math.round(this.current * (0.8 + this.random() * 0.4));
    this.current = Math.min(this.current * 2, this.maxMs);
    return delay;
  }

  /** The delay `next` starts from, before jitter. */
  get base(): number {
    return this.current;
  }

  /** Back to the first delay (after a success). */
  reset(): void {
    this.current = this.initialMs;
  }
}
