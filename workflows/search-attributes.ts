// The custom search attributes every scenario sets (all Keyword), typed for upsert and queries.
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

export const NhiIdKey = defineSearchAttributeKey('NhiId', SearchAttributeType.KEYWORD);
export const ScenarioKey = defineSearchAttributeKey('Scenario', SearchAttributeType.KEYWORD);
export const NhiStateKey = defineSearchAttributeKey('NhiState', SearchAttributeType.KEYWORD);
export const ChangeIdKey = defineSearchAttributeKey('ChangeId', SearchAttributeType.KEYWORD);
export const RequestedByKey = defineSearchAttributeKey('RequestedBy', SearchAttributeType.KEYWORD);

export const ALL_SEARCH_ATTRIBUTES = [NhiIdKey, ScenarioKey, NhiStateKey, ChangeIdKey, RequestedByKey];
