/** The file drop source: what the agent needs to configure and run it. */
export { FileSourceConfig, type FileSourceConfigInput, type FileFormat } from './config.js';
export { FileSource, type FileSourceCounters, type FileSourceHealth, type FileOutcome, type FileSourceEvents } from './file-source.js';
