/** The SOAP source: what the agent needs to configure and run it. */
export { SoapSourceConfig, type SoapSourceConfigInput } from './config.js';
export { SoapSource, type PollReport, type QuarantinedRecord, type SoapSourceStatus } from './soap-source.js';
export { classifySoapError, soapFault } from './soap-errors.js';
