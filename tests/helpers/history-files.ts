// Histories as JSON files: protobufjs's object form of temporal.api.history.v1.History (enum
// names, 64-bit numbers as strings, bytes in base64), which round-trips exactly. (The SDK's
// historyToJSON/historyFromJSON fail here: @temporalio/common and @temporalio/proto each carry
// their own copy of protobufjs, and one rejects the other's types.)
import { temporal } from '@temporalio/proto';

type History = temporal.api.history.v1.IHistory;
const HistoryType = temporal.api.history.v1.History;

export function historyToFileJson(history: History): string {
  const object = HistoryType.toObject(HistoryType.fromObject(history), { enums: String, longs: String, bytes: String });
  return JSON.stringify(object, null, 1);
}

export function historyFromFileJson(text: string): temporal.api.history.v1.History {
  return HistoryType.fromObject(JSON.parse(text));
}
