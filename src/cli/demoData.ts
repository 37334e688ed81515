import { randomInt } from 'node:crypto';
import { activateStaff, inviteStaff, registerPatient } from '../client/accounts.js';
import { unlockKeystore } from '../client/keystoreFiles.js';
import { Session } from '../client/session.js';
import type { ScryptParams } from '../records/keystore.js';
import { passwordProblems } from '../records/password.js';
import type { NetworkLayout, NetworkNode } from './networkSetup.js';

/**
 * Demo users for a local cluster, created through the nodes' APIs as real signed transactions: per
 * hospital an admin (from genesis), a doctor, an auditor and two patients, with a few records and
 * grants across hospitals so every role has something to look at.
 */
export interface DemoUser {
  id: string;
  role: string;
  hospital: string;
  password: string;
  api: string;
}

const WORDS = [
  'Amber',
  'Birch',
  'Cedar',
  'Delta',
  'Ember',
  'Fjord',
  'Grove',
  'Harbor',
  'Indigo',
  'Juniper',
  'Kestrel',
  'Lumen',
  'Maple',
  'Nimbus',
  'Orchid',
  'Pebble',
  'Quartz',
  'Raven',
  'Sierra',
  'Tundra',
];

/** A readable password that meets the policy (12+ characters, rated ≥ 3 by the strength estimator): three different words and a number. */
export function demoPassword(): string {
  for (;;) {
    const words = new Set<string>();
    while (words.size < 3) words.add(WORDS[randomInt(WORDS.length)]!);
    const password = `${[...words].join('-')}-${randomInt(10, 100)}!`;
    if (passwordProblems(password, '').length === 0) return password;
  }
}

async function login(node: NetworkNode, id: string, password: string): Promise<Session> {
  return Session.connect(node.apiUrl, unlockKeystore(node.keystoreDir, id, password));
}

export async function createDemoUsers(layout: NetworkLayout, kdf?: ScryptParams): Promise<DemoUser[]> {
  const users: DemoUser[] = [];
  const sessions = new Map<string, Session>();
  const letterOf = (n: NetworkNode) => n.hospital.slice('hosp-'.length);

  for (const node of layout.nodes) {
    users.push({ id: node.admin.id, role: 'admin', hospital: node.hospital, password: node.admin.password, api: node.apiUrl });
    const admin = await login(node, node.admin.id, node.admin.password);
    for (const role of ['doctor', 'auditor'] as const) {
      const id = `${role === 'doctor' ? 'dr' : 'aud'}-${letterOf(node)}`;
      const password = demoPassword();
      // Issue 10: the admin only invites; the script then plays the staff member's own computer, which
      // generates the keys, seals them under the staff member's password and activates with the code.
      const invited = await inviteStaff(admin, { userId: id, role });
      if (invited.outcome.denied) throw new Error(`inviting ${id} was denied: ${invited.outcome.denied}`);
      const activated = await activateStaff({
        apiUrl: node.apiUrl,
        userId: id,
        code: invited.code,
        password,
        keystoreDir: node.keystoreDir,
        ...(kdf ? { kdf } : {}),
      });
      if (activated.outcome.denied) throw new Error(`activating ${id} was denied: ${activated.outcome.denied}`);
      sessions.set(id, activated.session);
      users.push({ id, role, hospital: node.hospital, password, api: node.apiUrl });
    }
    for (const n of [1, 2]) {
      const id = `pat-${letterOf(node)}${n}`;
      const password = demoPassword();
      const { session, outcome } = await registerPatient({ apiUrl: node.apiUrl, userId: id, password, keystoreDir: node.keystoreDir, ...(kdf ? { kdf } : {}) });
      if (outcome.denied) throw new Error(`registering ${id} was denied: ${outcome.denied}`);
      sessions.set(id, session);
      users.push({ id, role: 'patient', hospital: node.hospital, password, api: node.apiUrl });
    }
  }

  // Records and grants, some across hospitals: a patient's doctor may work at another hospital. Each
  // node must first have every user, wherever they were enrolled or registered.
  const nodes = layout.nodes;
  const everyone = (await sessions.get(`pat-${letterOf(nodes[nodes.length - 1]!)}2`)!.api.status()).height;
  for (const node of nodes) await sessions.get(`dr-${letterOf(node)}`)!.waitForHeight(everyone);
  for (let i = 0; i < nodes.length; i++) {
    const here = letterOf(nodes[i]!);
    const next = letterOf(nodes[(i + 1) % nodes.length]!);
    const patient = sessions.get(`pat-${here}1`)!;
    await must(
      patient.createRecord(patient.userId, {
        title: 'Admission check',
        vitals: { temperature: 36.6 + i / 10, bloodPressure: `${118 + i}/${78 + i}` },
        notes: 'Routine admission vitals.',
      }),
    );
    await must(patient.grant(`dr-${here}`));
    if (next !== here) await must(patient.grant(`dr-${next}`));
    const granted = await must(patient.grant(`aud-${here}`));
    // The doctor's node must know every grant: a record is encrypted for exactly the current grantees.
    const doctor = sessions.get(`dr-${next}`)!;
    await doctor.waitForHeight(granted.height!);
    await must(
      doctor.createRecord(patient.userId, {
        title: 'Follow-up',
        vitals: { temperature: 37.1, bloodPressure: '125/82', heartRate: 72 },
        notes: 'Follow-up visit.',
      }),
    );
    const second = sessions.get(`pat-${here}2`)!;
    await must(second.createRecord(second.userId, { title: 'Self-reported', vitals: { temperature: 36.9 } }));
    await must(second.book(`dr-${here}`, Date.now() + (i + 1) * 86_400_000));
    await must(sessions.get(`dr-${here}`)!.requestAccess(second.userId));
  }
  return users;
}

async function must<T extends { denied?: string }>(p: Promise<T>): Promise<T> {
  const r = await p;
  if (r.denied) throw new Error(`demo setup action denied: ${r.denied}`);
  return r;
}
