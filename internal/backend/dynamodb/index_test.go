package dynamodb_test

import (
	"testing"

	"github.com/lfsm/lfsm/internal/backend/awsconfig"
	"github.com/lfsm/lfsm/internal/backend/dynamodb"
	"github.com/lfsm/lfsm/internal/engine"
)

// TestIndexWrites pins what the indexes cost, as DynamoDB Local reports it
// (ReturnConsumedCapacity INDEXES, summed by the meter): Create writes the
// item and its three index entries; Acquire writes no indexed attribute; a
// commit that leaves the status as it was writes no index; one that changes
// it moves its by_status entry (a delete and a put).
func TestIndexWrites(t *testing.T) {
	m := &awsconfig.Meter{}
	c, table := newTable(t, m)
	s := newStore(t, dynamodb.Options{Client: c, Table: table})
	units := func(op string) float64 {
		u := m.Usage()[op]
		return u.WriteUnits + u.CapacityUnits
	}
	m.Reset()
	if err := s.Create(t.Context(), engine.Execution{CorrelationID: "x", Machine: "M", State: "S0", Checkpoint: []byte("s"), CreatedAt: t0}); err != nil {
		t.Fatal(err)
	}
	if got := units("DynamoDB.PutItem"); got != 4 {
		t.Errorf("Create: %.1f units, want 4 (item + 3 index entries)", got)
	}
	// and reads the id's tombstone first (the tombstone rule).
	if u := m.Usage()["DynamoDB.GetItem"]; u.Calls != 1 {
		t.Errorf("Create: %d GetItem calls, want 1 (the tombstone)", u.Calls)
	} else {
		t.Logf("Create's tombstone read: %.1f read units, %.1f units", u.ReadUnits, u.CapacityUnits)
	}
	for i, tc := range []struct {
		outcome engine.Outcome
		update  float64
	}{
		{engine.OutcomeNext, 1}, // running stays running
		{engine.OutcomeWait, 3}, // running -> waiting: the by_status entry moves
	} {
		m.Reset()
		l, err := s.Acquire(t.Context(), acq("x", i, 0, t0))
		if err != nil {
			t.Fatal(err)
		}
		if got := units("DynamoDB.UpdateItem"); got != 1 {
			t.Errorf("Acquire of step %d: %.1f units, want 1 (no index written)", i, got)
		}
		m.Reset()
		cm, _ := step("x", i, 0, l.Fence, t0)
		cm.Outcome = tc.outcome
		if err := s.Commit(t.Context(), cm); err != nil {
			t.Fatal(err)
		}
		if got := units("DynamoDB.UpdateItem"); got != tc.update {
			t.Errorf("commit %s: execution update %.1f units, want %.1f", tc.outcome, got, tc.update)
		}
	}
}
