import { loadNodeConfig } from '../../node/config.js';
import { MedLedgerNode } from '../../node/node.js';

/** `medledger node --config FILE`: runs one node until SIGINT/SIGTERM (or its parent goes away). */
export async function runNode(opts: { config: string; exitWithStdin?: boolean }): Promise<void> {
  const node = await MedLedgerNode.start(loadNodeConfig(opts.config));
  let stopping = false;
  const stop = async (why: string) => {
    if (stopping) return;
    stopping = true;
    node.logger.info({ why }, 'stopping');
    try {
      await node.stop();
      process.exit(0);
    } catch (err) {
      node.logger.error({ err }, 'unclean stop');
      process.exit(1);
    }
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
  if (opts.exitWithStdin) {
    // Started by a cluster: when the cluster process dies, its end of our stdin closes.
    process.stdin.on('end', () => void stop('parent exited'));
    process.stdin.on('error', () => void stop('parent exited'));
    process.stdin.resume();
  }
}
