export { SalesforceSink, type SalesforceSinkState } from './salesforce-sink.js';
export {
  SalesforceSinkConfig,
  SalesforceAuth,
  SalesforceMapping,
  defaultSalesforceMappings,
  type SalesforceSinkConfigInput,
  type SalesforceMappingInput,
} from './config.js';
export { planWrites, type WritePlan } from './plan.js';
export { parseLimitInfo } from './classify.js';
