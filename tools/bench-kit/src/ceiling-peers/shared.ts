/**
 * Send and receive high-water marks of the ceiling peers and clients: far above any window a
 * benchmark uses, so nothing is dropped or blocked by a full queue.
 */
export const CEILING_HWM = 100_000;
