package deploy

import "github.com/lfsm/lfsm/internal/backend/dynamodb"

// Attribute names of the tables the deploy side designs itself (the retry
// and dispatch tables; the store's table comes from the store).
const (
	attrTTL  = "ttl"
	attrCID  = "correlation_id"
	attrStep = "step"
)

// storeTable is the execution store's table, exactly as the DynamoDB store
// (internal/backend/dynamodb) creates it: one table for executions, their
// step items (history, checkpoints, outboxes) and the sparse indexes `lfsm
// ls` reads (docs/design.md), so no item reaches the 400 KB limit.
func storeTable() Table {
	s := dynamodb.TableSchema()
	store := Table{
		ID: IDExecutionsTable, Suffix: "executions",
		Hash: Attr{s.PartitionKey, KeyString}, Range: Attr{s.SortKey, KeyString},
		TTL: s.TTL, Stateful: true,
	}
	for _, ix := range s.Indexes {
		store.Indexes = append(store.Indexes, Index{
			Name: ix.Name, Hash: Attr{ix.PartitionKey, KeyString}, Range: Attr{ix.SortKey, KeyString},
			Projection: ix.Projection,
		})
	}
	return store
}

// retryTable holds delayed retries for the dispatches that cannot delay a
// message themselves (Kinesis, SNS, the DynamoDB stream; SQS retries are
// delayed messages on the dispatch queue), exactly as the retry poller
// (dynamodb.RetryTable) creates and reads it: keyed by a partition and the
// step, with a local index on the due time that the every-minute poll
// queries.
func retryTable() Table {
	r := dynamodb.RetryTableSchema()
	return Table{
		ID: IDRetriesTable, Suffix: "retries",
		Hash: Attr{r.PartitionKey, KeyNumber}, Range: Attr{r.SortKey, KeyString},
		Indexes: []Index{
			{Name: r.Index, Hash: Attr{r.PartitionKey, KeyNumber}, Range: Attr{r.RunAt, KeyNumber}, Local: true},
		},
		TTL: r.TTL, Stateful: true,
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
