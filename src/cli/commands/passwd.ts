import type { Command } from 'commander';
import { changeKeystorePassword, resolveKeystoreDir } from '../../client/keystoreFiles.js';
import { parseUserId } from '../../client/inputs.js';
import { isMedLedgerError } from '../../records/errors.js';
import { PASSWORD_POLICY } from '../../records/password.js';
import { readNewSecret, readSecret, UsageError } from '../passwordPrompt.js';
import { flag, PASSWORD_ENV } from '../userSession.js';

export const NEW_PASSWORD_ENV_PASSWD = 'MEDLEDGER_NEW_PASSWORD';

/**
 * `medledger passwd --user ID [--keystores DIR]`: re-seals the user's keystore under a new password
 * (new salt, current KDF parameters, format 2), atomically. Works offline: no node is contacted.
 */
export function addPasswdCommand(cmd: Command): Command {
  return cmd
    .description('change your password: re-seals your keystore (on this computer) under a new one')
    .requiredOption('--user <id>', 'your user id')
    .option('--keystores <dir>', 'keystore directory (default: ~/.medledger/keystores)')
    .option(
      '--api <url>',
      "your home node API: refreshes the password copy of your key backup there (and finds the cluster's keystore directory when your keystore is not in ~/.medledger/keystores)",
    )
    .addHelpText(
      'after',
      `\nOld password: from ${PASSWORD_ENV}, else prompted. New password (${PASSWORD_POLICY}): from ${NEW_PASSWORD_ENV_PASSWD}, else prompted twice.\nExit codes: 0 changed, 2 wrong password, weak new password or other error.`,
    )
    .action(async (o: { user: string; keystores?: string; api?: string }) => {
      const userId = flag('user', o.user, parseUserId)!;
      let hint: string | undefined;
      if (!o.keystores && o.api) {
        const { ApiClient } = await import('../../client/apiClient.js');
        hint = (await new ApiClient(o.api).status()).keystoreDir;
      }
      const dir = resolveKeystoreDir(o.keystores, userId, hint);
      const oldPassword = await readSecret(`Current password for ${userId}: `, PASSWORD_ENV);
      const newPassword = await readNewSecret(`New password for ${userId}: `, NEW_PASSWORD_ENV_PASSWD);
      let keys;
      try {
        keys = changeKeystorePassword(dir, userId, oldPassword, newPassword);
      } catch (err) {
        if (isMedLedgerError(err, 'WRONG_PASSWORD')) throw new UsageError('password unchanged: wrong password');
        if (isMedLedgerError(err, 'NOT_FOUND')) throw new UsageError(`password unchanged: no keystore for ${userId} in ${dir}`);
        if (isMedLedgerError(err, 'TAMPERED')) throw new UsageError(`password unchanged: the keystore of ${userId} is damaged or was altered`);
        if (isMedLedgerError(err, 'WEAK_PASSWORD')) throw new UsageError(`password unchanged: ${err.message}`);
        throw err;
      }
      process.stdout.write(`password changed for ${userId}; keystore in ${dir}\n`);
      if (o.api) {
        // The backup's password copy (issue 10) follows the new password; the code-sealed copy is unchanged.
        const { ApiClient } = await import('../../client/apiClient.js');
        const { refreshBackupPasswordCopy } = await import('../../client/recovery.js');
        const { readKeystoreFile } = await import('../../client/keystoreFiles.js');
        try {
          if (await refreshBackupPasswordCopy(new ApiClient(o.api), keys, readKeystoreFile(dir, userId)))
            process.stdout.write(`the password copy of your key backup on the node was updated\n`);
        } catch (err) {
          process.stderr.write(`warning: the key backup on the node was not updated (${(err as Error).message}); run passwd again with --api later\n`);
        }
      }
    });
}
