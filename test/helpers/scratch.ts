import fs from 'fs';

/**
 * Remove a test's scratch directory, even while a write still lands in it: the TTS cache writes a file it has
 * already served from memory in the background (stream mode), so a removal right after the flows stop can meet
 * ENOTEMPTY. Node's rmSync retries that (and EBUSY) with a linear backoff.
 */
export function removeScratch(dir: string): void {
  fs.rmSync(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 20 });
}
