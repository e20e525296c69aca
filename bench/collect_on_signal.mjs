// Benchmark only, preloaded into the process measured (node --expose-gc
// --import): SIGUSR2 runs a full garbage collection, so that resident memory
// can be compared between two states without the garbage either left.
process.on('SIGUSR2', () => {
  globalThis.gc();
});
