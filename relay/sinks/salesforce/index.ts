export { SalesforceSink, type SalesforceSinkState } from './salesforce-sink.js';
export {
  SalesforceSinkConfig,
  SalesforceAuth,
  SalesforceMapping,
  defaultSalesforceMappings,
  type SalesforceSinkConfigInput,
  type SalesforceMappingInput,
} from './config.js';
export { planWrites, type WritePlan, type RecordWrite } from './plan.js';
export { planCalls, type CollectionCall, type CallRecord } from './calls.js';
export { MAX_RECORDS_PER_CALL } from './rest-client.js';
export { parseLimitInfo } from './classify.js';
export { SalesforceRecords, buildQueries, encodeQueryValue, soqlLiteral, MAX_QUERY_URL_CHARS } from './records.js';
