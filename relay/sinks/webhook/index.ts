export { WebhookSink, type WebhookSinkState } from './webhook-sink.js';
export { WebhookSinkConfig, MIN_SECRET_LENGTH, type WebhookSinkConfigInput } from './config.js';
export {
  sign,
  verify,
  signedContent,
  SIGNATURE_HEADER,
  DEFAULT_TOLERANCE_SECONDS,
  type SignedContent,
  type VerifyOptions,
  type VerifyResult,
  type VerifyFailure,
} from './signature.js';
export {
  structuredMessage,
  binaryMessage,
  batchMessage,
  contentModeOf,
  encodeHeaderValue,
  decodeHeaderValue,
  STRUCTURED_CONTENT_TYPE,
  BATCH_CONTENT_TYPE,
  type ContentMode,
  type HttpMessage,
  type WireEvent,
} from './binding.js';
