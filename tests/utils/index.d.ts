/** Ports free right now on 127.0.0.1 (the operating system picks them). */
export function freePorts(count: number): Promise<number[]>;

/**
 * Polls `condition` until it returns a value other than undefined or false, or the deadline
 * passes; resolves with that value. The error names what was awaited, and the condition's
 * last error if it threw.
 */
export function waitFor<T>(
  condition: () => T | undefined | false | Promise<T | undefined | false>,
  what: string,
  timeoutMs?: number,
  pollMs?: number,
): Promise<T>;

/**
 * The example's `pnpm start` command line after `node` (its V8 flags and script, relative
 * to apps/basic-example), so that the benchmarks and `pnpm demo` run the nodes exactly as a
 * user does.
 */
export function exampleCommand(): string[];
