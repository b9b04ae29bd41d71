/** The only source of chance the core uses, injected so that runs replay exactly. */
export interface Prng {
  /** A uniformly distributed integer in [0, bound). */
  nextInt(bound: number): number;
}

/** A {@link Prng} that also draws floats, for simulations and jitter. */
export interface SeededPrng extends Prng {
  /** A uniformly distributed float in [0, 1). */
  nextFloat(): number;
}

/**
 * A small, fast, seeded generator (SplitMix32-style mixing over a 32-bit state); good for
 * jitter and simulation, not for cryptography.
 */
export function createPrng(seed: number): SeededPrng {
  let state = seed >>> 0 || 0x9e3779b9;
  const next32 = (): number => {
    state = (state + 0x9e3779b9) >>> 0;
    let z = state;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  };
  return {
    nextInt(bound: number): number {
      if (!(bound >= 1)) throw new RangeError(`nextInt(bound): expected bound >= 1, got ${bound}`);
      return Math.floor((next32() / 0x1_0000_0000) * bound);
    },
    nextFloat(): number {
      return next32() / 0x1_0000_0000;
    },
  };
}
