/** A broken safety or liveness property, found by the simulator. */
export class SimViolation extends Error {
  override readonly name = "SimViolation";
  constructor(
    readonly invariant: string,
    message: string,
  ) {
    super(`${invariant}: ${message}`);
  }
}
