import type { AuditEvent } from './audit.js';
import { toBase64, utf8 } from './crypto/bytes.js';
import type { TxType } from './tx/types.js';

/**
 * FHIR R4 export of the audit trail: AuditEvent[] → a Bundle (type collection) of AuditEvent resources,
 * shaped after IHE Basic Audit Log Patterns (BALP) — the patient-centred Create, Read, Update, Delete and
 * Query profiles when a patient is involved, the plain ones otherwise. Pure; no I/O.
 *
 * Choices where MedLedger and BALP differ (written down in the README):
 * - BALP's profiles describe successful actions (outcome fixed to 0). A denied attempt keeps the same shape
 *   with outcome 4 (minor failure) and the reason in outcomeDesc, and claims no profile.
 * - Consent actions (grant, revoke, request, approve, deny access) have no BALP profile: subtype
 *   `operation`, no profile claimed.
 * - MedLedger records no network addresses (the ledger replicates who, what and when, not where from), so
 *   agent.network, which BALP asks for, is absent.
 * - Identifiers are the ledger's pseudonymous ids under `urn:medledger:*` systems; the ledger transaction id
 *   is the resource id and the BALP transaction entity, so each resource can be tied to an inclusion proof.
 */
export const FHIR_SYSTEMS = {
  eventType: 'http://terminology.hl7.org/CodeSystem/audit-event-type',
  restfulInteraction: 'http://hl7.org/fhir/restful-interaction',
  /** R4 binds AuditEvent.outcome (a code) to this system's codes: 0 success, 4 minor failure. */
  outcome: 'http://terminology.hl7.org/CodeSystem/audit-event-outcome',
  dicom: 'http://dicom.nema.org/resources/ontology/DCM',
  participationType: 'http://terminology.hl7.org/CodeSystem/v3-ParticipationType',
  provenanceParticipant: 'http://terminology.hl7.org/CodeSystem/provenance-participant-type',
  entityType: 'http://terminology.hl7.org/CodeSystem/audit-entity-type',
  objectRole: 'http://terminology.hl7.org/CodeSystem/object-role',
  sourceType: 'http://terminology.hl7.org/CodeSystem/security-source-type',
  balpEntityType: 'https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType',
  user: 'urn:medledger:user',
  hospital: 'urn:medledger:hospital',
  record: 'urn:medledger:record',
  transaction: 'urn:medledger:tx',
  txType: 'urn:medledger:tx-type',
} as const;

const BALP = 'https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit.';

export type RestInteraction = 'create' | 'read' | 'update' | 'delete' | 'search' | 'operation';

/** The RESTful interaction each transaction type amounts to (AuditEvent.subtype). */
export const interactionOf: Record<TxType, RestInteraction> = {
  registerPatient: 'create',
  inviteUser: 'create',
  activateUser: 'create',
  deactivateUser: 'update',
  rotateKeys: 'update',
  revokeStaffKey: 'update',
  recoverPatientKeys: 'update',
  createRecord: 'create',
  copyRecord: 'create',
  updateRecord: 'update',
  deleteRecord: 'delete',
  readRecord: 'read',
  listRecords: 'search',
  attachFile: 'create',
  replaceFile: 'update',
  removeFile: 'delete',
  grantAccess: 'operation',
  revokeAccess: 'operation',
  requestAccess: 'operation',
  approveRequest: 'operation',
  denyRequest: 'operation',
  bookAppointment: 'create',
  cancelAppointment: 'delete',
  queryAudit: 'search',
  statsConsent: 'update',
  statsReport: 'create',
  statsQuery: 'operation',
  statsAggregate: 'operation',
};

const PROFILE: Record<RestInteraction, string | null> = {
  create: 'Create',
  read: 'Read',
  update: 'Update',
  delete: 'Delete',
  search: 'Query',
  operation: null,
};

// ---- the FHIR R4 types this export produces (a subset of the resource definitions) ----
export interface Coding {
  system: string;
  code: string;
  display?: string;
}
export interface CodeableConcept {
  coding?: Coding[];
  text?: string;
}
export interface Identifier {
  system: string;
  value: string;
}
export interface Reference {
  type?: string;
  identifier?: Identifier;
  display?: string;
}
export interface FhirAuditEvent {
  resourceType: 'AuditEvent';
  id: string;
  meta?: { profile: string[] };
  type: Coding;
  subtype: Coding[];
  action: AuditEvent['action'];
  recorded: string;
  outcome: '0' | '4';
  outcomeDesc?: string;
  agent: { type: CodeableConcept; role?: CodeableConcept[]; who: Reference; name?: string; requestor: boolean }[];
  source: { site: string; observer: Reference; type: Coding[] };
  entity: { what?: Reference; type: Coding; role?: Coding; description?: string; query?: string }[];
}
export interface FhirBundle {
  resourceType: 'Bundle';
  type: 'collection';
  timestamp?: string;
  entry: { fullUrl: string; resource: FhirAuditEvent }[];
}

const coding = (system: string, code: string, display: string): Coding => ({ system, code, display });
const concept = (c: Coding): CodeableConcept => ({ coding: [c] });
const userRef = (id: string, type?: string): Reference => ({ ...(type ? { type } : {}), identifier: { system: FHIR_SYSTEMS.user, value: id } });
const hospitalRef = (id: string): Reference => ({ identifier: { system: FHIR_SYSTEMS.hospital, value: id }, display: `MedLedger node of ${id}` });

const DCM_SOURCE = coding(FHIR_SYSTEMS.dicom, '110153', 'Source Role ID');
const DCM_DESTINATION = coding(FHIR_SYSTEMS.dicom, '110152', 'Destination Role ID');
const DCM_APPLICATION = coding(FHIR_SYSTEMS.dicom, '110150', 'Application');
const CUSTODIAN = coding(FHIR_SYSTEMS.provenanceParticipant, 'custodian', 'Custodian');
const AUTHOR = coding(FHIR_SYSTEMS.participationType, 'AUT', 'author (originator)');
const RECIPIENT = coding(FHIR_SYSTEMS.participationType, 'IRCP', 'information recipient');
const PERSON = coding(FHIR_SYSTEMS.entityType, '1', 'Person');
const SYSTEM_OBJECT = coding(FHIR_SYSTEMS.entityType, '2', 'System Object');
const ROLE_PATIENT = coding(FHIR_SYSTEMS.objectRole, '1', 'Patient');
const ROLE_DOMAIN_RESOURCE = coding(FHIR_SYSTEMS.objectRole, '4', 'Domain Resource');
const ROLE_PROVIDER = coding(FHIR_SYSTEMS.objectRole, '15', 'Provider');
const ROLE_SECURITY_USER = coding(FHIR_SYSTEMS.objectRole, '11', 'Security User Entity');
const ROLE_QUERY = coding(FHIR_SYSTEMS.objectRole, '24', 'Query');

/**
 * Who is on which side, per BALP: the client is the Source Role ID and the server the Destination Role ID,
 * except for a read (data flows from the server) and a delete (the client is the Application and the
 * server the Custodian).
 */
function sides(interaction: RestInteraction): { client: Coding; server: Coding; user: Coding } {
  switch (interaction) {
    case 'read':
      return { client: DCM_DESTINATION, server: DCM_SOURCE, user: RECIPIENT };
    case 'search':
      return { client: DCM_SOURCE, server: DCM_DESTINATION, user: RECIPIENT };
    case 'delete':
      return { client: DCM_APPLICATION, server: CUSTODIAN, user: AUTHOR };
    default:
      return { client: DCM_SOURCE, server: DCM_DESTINATION, user: AUTHOR };
  }
}

/** The object acted upon (BALP's data entity), when the action has one besides the patient. */
function dataEntity(e: AuditEvent): FhirAuditEvent['entity'][number] | null {
  if (e.record) return { what: { identifier: { system: FHIR_SYSTEMS.record, value: e.record } }, type: SYSTEM_OBJECT, role: ROLE_DOMAIN_RESOURCE };
  switch (e.type) {
    case 'registerPatient':
      return { what: userRef(e.agent.user, 'Patient'), type: SYSTEM_OBJECT, role: ROLE_DOMAIN_RESOURCE };
    case 'activateUser':
      return { what: userRef(e.agent.user, 'Practitioner'), type: SYSTEM_OBJECT, role: ROLE_DOMAIN_RESOURCE };
    case 'inviteUser':
    case 'deactivateUser':
      return e.subject ? { what: userRef(e.subject, 'Practitioner'), type: SYSTEM_OBJECT, role: ROLE_DOMAIN_RESOURCE } : null;
    case 'bookAppointment':
    case 'cancelAppointment':
      return {
        what: { type: 'Appointment', display: e.subject ? `appointment with ${e.subject}` : 'appointment' },
        type: SYSTEM_OBJECT,
        role: ROLE_DOMAIN_RESOURCE,
      };
    default:
      return null;
  }
}

/** The transaction id as an RFC 9562 version 8 UUID (deterministic, so the same trail exports the same bundle). */
export function uuidOfTx(tx: string): string {
  const h = tx.slice(0, 32).split('');
  h[12] = '8';
  h[16] = ((parseInt(h[16]!, 16) & 0x3) | 0x8).toString(16);
  const s = h.join('');
  return `${s.slice(0, 8)}-${s.slice(8, 12)}-${s.slice(12, 16)}-${s.slice(16, 20)}-${s.slice(20, 32)}`;
}

/** One ledger audit event as a FHIR R4 AuditEvent resource. */
export function toFhirAuditEvent(e: AuditEvent): FhirAuditEvent {
  const interaction = interactionOf[e.type];
  const side = sides(interaction);
  const profile = PROFILE[interaction];
  const entity: FhirAuditEvent['entity'] = [];
  if (e.patient) entity.push({ what: userRef(e.patient, 'Patient'), type: PERSON, role: ROLE_PATIENT });
  const data = dataEntity(e);
  if (data) entity.push(data);
  if (e.subject && e.type !== 'inviteUser' && e.type !== 'deactivateUser') {
    const appointment = e.type === 'bookAppointment' || e.type === 'cancelAppointment';
    entity.push({ what: userRef(e.subject), type: PERSON, role: appointment ? ROLE_PROVIDER : ROLE_SECURITY_USER });
  }
  if (interaction === 'search') {
    const text = `${e.type}${e.patient ? `?patient=${e.patient}` : ''}`;
    entity.push({ type: SYSTEM_OBJECT, role: ROLE_QUERY, description: text, query: toBase64(utf8(text)) });
  }
  entity.push({
    what: { identifier: { system: FHIR_SYSTEMS.transaction, value: e.tx } },
    type: coding(FHIR_SYSTEMS.balpEntityType, 'XrequestId', 'X-Request-Id'),
  });
  return {
    resourceType: 'AuditEvent',
    id: e.tx,
    // BALP profiles are for successful actions; a denial keeps the shape without claiming one.
    ...(profile && e.outcome === 'success' ? { meta: { profile: [`${BALP}${e.patient ? 'Patient' : ''}${profile}`] } } : {}),
    type: coding(FHIR_SYSTEMS.eventType, 'rest', 'Restful Operation'),
    subtype: [coding(FHIR_SYSTEMS.restfulInteraction, interaction, interaction), coding(FHIR_SYSTEMS.txType, e.type, e.type)],
    action: e.action,
    recorded: new Date(e.recorded).toISOString(),
    outcome: e.outcome === 'success' ? '0' : '4',
    ...(e.outcome === 'denied' ? { outcomeDesc: `denied: ${e.reason ?? 'not permitted'}` } : {}),
    agent: [
      { type: concept(side.user), role: [{ text: e.agent.role }], who: userRef(e.agent.user), name: e.agent.user, requestor: true },
      { type: concept(side.client), who: { display: `MedLedger client of ${e.agent.user}` }, requestor: false },
      { type: concept(side.server), who: hospitalRef(e.source), requestor: false },
    ],
    source: { site: e.source, observer: hospitalRef(e.source), type: [coding(FHIR_SYSTEMS.sourceType, '4', 'Application Server')] },
    entity,
  };
}

/** The audit trail as a FHIR R4 Bundle of AuditEvent resources, in the order given. */
export function toFhirBundle(events: AuditEvent[], opts: { timestamp?: number } = {}): FhirBundle {
  return {
    resourceType: 'Bundle',
    type: 'collection',
    ...(opts.timestamp !== undefined ? { timestamp: new Date(opts.timestamp).toISOString() } : {}),
    entry: events.map((e) => ({ fullUrl: `urn:uuid:${uuidOfTx(e.tx)}`, resource: toFhirAuditEvent(e) })),
  };
}
