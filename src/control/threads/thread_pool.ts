// A piscina pool for long tasks: one worker thread per task, each task running as long as its
// thread serves (a shard's loop, an I/O thread's front). piscina starts and replaces the threads;
// the callers keep the tasks' lifecycles (start, death, stop).

import Piscina from 'piscina'

export function threadPerTaskPool(filename: string, name: string, threads: number): Piscina {
  return new Piscina({
    filename,
    name,
    minThreads: threads,
    maxThreads: threads,
    concurrentTasksPerWorker: 1,
    idleTimeout: Infinity,
    maxQueue: threads,
    // Threads wait on our own doorbells, not on piscina's.
    atomics: 'disabled',
  })
}
