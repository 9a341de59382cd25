package deploy

// The tables' key schemas. They must be exactly what the DynamoDB store
// (internal/backend/dynamodb) reads and writes: its table design is in
// docs/design.md ("The DynamoDB store"), and TestTablesMatchStore compares the
// two once the store exports its own.

// Attribute names the tables are keyed and indexed by.
const (
	attrID      = "id"
	attrMachine = "machine"
	attrStatus  = "status"
	attrUpdated = "updated"
	attrSeq     = "seq"
	attrTTL     = "ttl"
	attrPart    = "partition"
	attrKey     = "correlation_id_steps"
	attrRunAt   = "run_at"
	attrCID     = "correlation_id"
	attrStep    = "step"
)

// storeTables are the execution store's tables: executions (one item per
// execution; indexes so `lfsm ls` filters by machine and status and pages
// newest first), history (one item per step, so no execution item reaches
// DynamoDB's 400 KB limit) and retries (keyed by a partition of 16 and the
// step, with a local index on the due time, as REFERENCE.md §4 describes).
// All three hold state a deploy must never lose.
func storeTables() []Table {
	return []Table{
		{
			ID: IDExecutionsTable, Suffix: "executions",
			Hash: Attr{attrID, KeyString},
			Indexes: []Index{
				{Name: "by_machine", Hash: Attr{attrMachine, KeyString}, Range: Attr{attrUpdated, KeyString}},
				{Name: "by_status", Hash: Attr{attrStatus, KeyString}, Range: Attr{attrUpdated, KeyString}},
			},
			TTL: attrTTL, Stateful: true,
		},
		{
			ID: IDHistoryTable, Suffix: "history",
			Hash: Attr{attrID, KeyString}, Range: Attr{attrSeq, KeyString},
			TTL: attrTTL, Stateful: true,
		},
		{
			ID: IDRetriesTable, Suffix: "retries",
			Hash: Attr{attrPart, KeyNumber}, Range: Attr{attrKey, KeyString},
			Indexes: []Index{
				{Name: "by_run_at", Hash: Attr{attrPart, KeyNumber}, Range: Attr{attrRunAt, KeyNumber}, Local: true},
			},
			TTL: attrTTL, Stateful: true,
		},
	}
}

// dispatchTable is the DynamoDB-stream dispatch: one INSERT per message,
// keyed by correlation id and step/attempt (never the execution item's key,
// since a transaction cannot touch one item twice), removed by TTL. Messages
// in it are in flight, so it is kept like the store's tables.
func dispatchTable() Table {
	return Table{
		ID: IDDispatchTable, Suffix: "dispatch",
		Hash: Attr{attrCID, KeyString}, Range: Attr{attrStep, KeyString},
		TTL: attrTTL, Stream: "NEW_IMAGE", Stateful: true,
	}
}
