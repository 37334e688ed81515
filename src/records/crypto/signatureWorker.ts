import { parentPort } from 'node:worker_threads';
import { verifySignature } from './signature.js';
import type { SignatureCheck } from './signatureWorkers.js';

/**
 * The body of a signature worker thread (`signatureWorkers.ts` starts it): the very `verifySignature` of
 * the main thread, module and backend included, applied to each check of a request, in order.
 */
parentPort!.on('message', ({ id, items }: { id: number; items: SignatureCheck[] }) => {
  parentPort!.postMessage({ id, ok: items.map(({ key, message, sig }) => verifySignature(key, message, sig)) });
});
