package dynamodb

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	ddb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/lfsm/lfsm/internal/engine"
)

// The protocol-hardening seams of issue 6 (docs/design.md, "Leases and
// heartbeats", "Never stranded"). Renew is complete; Reopen and Stranded are
// the minimum that keeps this store an engine.Store until it implements them
// fully and runs storetest.RunProtocol: Reopen is SetStatus's resume plus
// the checkpoint (no restart time yet, so Acquire does not refuse a chain
// the resume replaced), due times are not recorded, takeovers are not
// counted (Lease.Takeovers stays 0), and Stranded reports that it is not
// implemented.

// errNoStranded is Stranded's answer until the store records due times and
// indexes them.
var errNoStranded = errors.New("dynamodb store: Stranded (the repair of stranded executions) is not implemented yet")

// Renew implements engine.Store: one conditional UpdateItem of the lease's
// expiry (le), on the fence and a held lease.
func (s *Store) Renew(ctx context.Context, r engine.LeaseRenewal) error {
	_, err := s.c.UpdateItem(ctx, &ddb.UpdateItemInput{
		TableName: s.table, Key: key(r.CorrelationID, execSK),
		ConditionExpression:       aws.String("attribute_exists(pk) AND f = :f AND le <> :zero"),
		UpdateExpression:          aws.String("SET le = :exp"),
		ExpressionAttributeValues: map[string]av{":f": vn(r.Fence), ":zero": vn(0), ":exp": vn(unixNano(r.Expires))},
		ReturnConsumedCapacity:    capacity,
	})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return fmt.Errorf("renew the lease of %s fence %d: %w", r.CorrelationID, r.Fence, engine.ErrFenceLost)
	}
	if err != nil {
		return fmt.Errorf("renew the lease of %s in DynamoDB table %s: %w", r.CorrelationID, *s.table, err)
	}
	return nil
}

// Reopen implements engine.Store, for now as SetStatus's resume of an
// execution found in r.From, then the new checkpoint (see above).
func (s *Store) Reopen(ctx context.Context, r engine.Reopen) error {
	x, err := s.get(ctx, r.CorrelationID)
	if errors.Is(err, engine.ErrNotFound) {
		return fmt.Errorf("reopen %s: %w", r.CorrelationID, engine.ErrNotFound)
	}
	if err != nil {
		return err
	}
	if x.e.Status != r.From || (r.From != engine.StatusFailed && r.From != engine.StatusStopped) || r.To.Terminal() {
		return fmt.Errorf("reopen %s from %s to %s: %w", r.CorrelationID, r.From, r.To,
			&engine.StatusError{CorrelationID: r.CorrelationID, Status: x.e.Status, DoneStep: x.e.DoneStep,
				Want: engine.StatusSwap{CorrelationID: r.CorrelationID, Step: x.e.DoneStep, From: r.From, To: r.To}})
	}
	if err := s.SetStatus(ctx, r.CorrelationID, r.To, "", r.Now); err != nil {
		return err
	}
	if r.Checkpoint == nil {
		return nil
	}
	_, err = s.c.UpdateItem(ctx, &ddb.UpdateItemInput{
		TableName: s.table, Key: key(r.CorrelationID, execSK),
		ConditionExpression:       aws.String("attribute_exists(pk) AND st = :to"),
		UpdateExpression:          aws.String("SET cp = :cp"),
		ExpressionAttributeValues: map[string]av{":to": vs(string(r.To)), ":cp": vb(r.Checkpoint)},
		ReturnConsumedCapacity:    capacity,
	})
	if err != nil {
		return fmt.Errorf("reopen %s: checkpoint in DynamoDB table %s: %w", r.CorrelationID, *s.table, err)
	}
	return nil
}

// Stranded implements engine.Store: not yet (see above).
func (s *Store) Stranded(ctx context.Context, q engine.StrandedQuery) ([]engine.Execution, error) {
	return nil, errNoStranded
}
