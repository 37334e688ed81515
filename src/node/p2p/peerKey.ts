import { randomBytes } from 'node:crypto';
import { chmod, link, mkdir, readFile, unlink, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import type { PrivateKey } from '@libp2p/interface';

/**
 * Loads the node's libp2p identity from `file`, creating an Ed25519 key there (mode 0600) when the file
 * does not exist, so the peer id stays the same across restarts.
 */
export async function loadOrCreatePeerKey(file: string): Promise<PrivateKey> {
  const existing = await readPeerKey(file);
  if (existing) return existing;

  const key = await generateKeyPair('Ed25519');
  await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  // Write to a private temp file, then link() it into place: link fails if another process created the
  // key meanwhile, in which case we use theirs rather than overwrite an identity someone already uses.
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  await writeFile(tmp, privateKeyToProtobuf(key), { mode: 0o600, flag: 'wx' });
  try {
    await chmod(tmp, 0o600); // the umask cannot widen this, but be explicit
    await link(tmp, file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    const winner = await readPeerKey(file);
    if (!winner) throw new Error(`peer key file ${file} appeared but could not be read`);
    return winner;
  } finally {
    await unlink(tmp).catch(() => undefined);
  }
  return key;
}

/** The peer id (base58 string) of the key stored in `file`; the file must exist. */
export async function peerIdOfKeyFile(file: string): Promise<string> {
  const key = await readPeerKey(file);
  if (!key) throw new Error(`peer key file ${file} does not exist`);
  return peerIdFromPrivateKey(key).toString();
}

async function readPeerKey(file: string): Promise<PrivateKey | undefined> {
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new Error(`cannot read peer key file ${file}: ${(err as Error).message}`);
  }
  let key: PrivateKey;
  try {
    key = privateKeyFromProtobuf(new Uint8Array(bytes));
  } catch (err) {
    throw new Error(`peer key file ${file} is not a libp2p private key: ${(err as Error).message}`);
  }
  if (key.type !== 'Ed25519') throw new Error(`peer key file ${file} holds a ${key.type} key; expected Ed25519`);
  return key;
}
