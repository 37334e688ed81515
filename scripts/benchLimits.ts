/**
 * Node `limits` for load generators: they play many users far above one person's rate, so the per-user and
 * registration limits are lifted (the mempool bounds and load shedding stay as configured by default).
 */
export const BENCH_LIMITS = { txPerSecondPerUser: 1e9, txBurstPerUser: 1e9, mempoolMaxPerUser: 1e9, registrationsPerMinute: 1e9, registrationsPerDay: 1e9 };
