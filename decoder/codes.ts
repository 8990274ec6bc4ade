/**
 * Every wire code Spillway reads or writes, with its ASCII letter. No other
 * module uses a bare number for a message type.
 *
 * @module
 */

/** Backend (server → client) message types. */
export const BackendCode = {
  Authentication: 0x52, // 'R'
  ParameterStatus: 0x53, // 'S'
  BackendKeyData: 0x4b, // 'K'
  ReadyForQuery: 0x5a, // 'Z'
  RowDescription: 0x54, // 'T'
  DataRow: 0x44, // 'D'
  CommandComplete: 0x43, // 'C'
  EmptyQueryResponse: 0x49, // 'I'
  ErrorResponse: 0x45, // 'E'
  NoticeResponse: 0x4e, // 'N'
  NotificationResponse: 0x41, // 'A'
  CopyInResponse: 0x47, // 'G'
  CopyOutResponse: 0x48, // 'H'
  CopyBothResponse: 0x57, // 'W'
  CopyData: 0x64, // 'd'
  CopyDone: 0x63, // 'c'
  NegotiateProtocolVersion: 0x76, // 'v'
} as const;

/** Frontend (client → server) message types. */
export const FrontendCode = {
  Query: 0x51, // 'Q'
  Password: 0x70, // 'p' (also SASLInitialResponse and SASLResponse)
  CopyData: 0x64, // 'd'
  CopyDone: 0x63, // 'c'
  CopyFail: 0x66, // 'f'
  Terminate: 0x58, // 'X'
} as const;

/** Authentication request sub-codes carried in an 'R' message. */
export const AuthCode = {
  Ok: 0,
  CleartextPassword: 3,
  MD5Password: 5,
  SASL: 10,
  SASLContinue: 11,
  SASLFinal: 12,
} as const;

/** Payload tags inside CopyData during streaming replication. */
export const ReplicationCode = {
  XLogData: 0x77, // 'w'
  PrimaryKeepalive: 0x6b, // 'k'
  StandbyStatusUpdate: 0x72, // 'r'
} as const;

/** pgoutput message tags (byte 0 of each XLogData payload). */
export const PgoutputCode = {
  Begin: 0x42, // 'B'
  Commit: 0x43, // 'C'
  Origin: 0x4f, // 'O'
  Relation: 0x52, // 'R'
  Type: 0x59, // 'Y'
  Insert: 0x49, // 'I'
  Update: 0x55, // 'U'
  Delete: 0x44, // 'D'
  Truncate: 0x54, // 'T'
  Message: 0x4d, // 'M'
  StreamStart: 0x53, // 'S'
  StreamStop: 0x45, // 'E'
  StreamCommit: 0x63, // 'c'
  StreamAbort: 0x41, // 'A'
  BeginPrepare: 0x62, // 'b'
  Prepare: 0x50, // 'P'
  CommitPrepared: 0x4b, // 'K'
  RollbackPrepared: 0x72, // 'r'
  StreamPrepare: 0x70, // 'p'
} as const;

/** Tuple markers inside Update/Delete and TupleData. */
export const TupleCode = {
  New: 0x4e, // 'N'
  Key: 0x4b, // 'K'
  Old: 0x4f, // 'O'
  Null: 0x6e, // 'n'
  UnchangedToast: 0x75, // 'u'
  Text: 0x74, // 't'
  Binary: 0x62, // 'b'
} as const;

/** Protocol magic numbers sent in place of a protocol version. */
export const StartupCode = {
  ProtocolVersion3: 196608, // 3.0
  SSLRequest: 80877103,
  CancelRequest: 80877102,
} as const;
