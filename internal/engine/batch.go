package engine

import "context"

// BatchCommitter is implemented by a StepCommitter that can end the steps of
// a batch of deliveries in fewer calls than one CommitStep each (the
// DynamoDB store: one BatchWriteItem for the batch's step items, one fenced
// update per execution, one batched send). Engine.HandleBatch uses it when
// the engine's StepCommitter implements it; see docs/design.md, "Batched
// commits".
type BatchCommitter interface {
	StepCommitter
	// CommitSteps applies each step as CommitStep would, and returns one
	// error per step (nil where it committed and its message went out),
	// with each step's Receipt set. The guarantees are CommitStep's, per
	// step: a lost fence (ErrFenceLost) records nothing that counts and
	// sends nothing; after any other error the step's delivery must come
	// back, and its redelivery (or the repair) finishes what the batch left
	// undone. A step's failure does not fail the others.
	CommitSteps(ctx context.Context, steps []StepCommit) []error
}

// StepCommit is one step of a CommitSteps call: CommitStep's arguments and
// its receipt.
type StepCommit struct {
	Commit Commit
	Out    *OutMessage
	Ack    string
	// Receipt is set by CommitSteps: the receipt of Out when it was sent.
	Receipt string
}

// Batch collects the deliveries of one batch (an SQS batch in the Lambda
// handler) for Engine.HandleBatch's batched commit: Add runs each one's
// acquire and actions at once, Commit then writes every step the batch ran
// and reports what happened to each, in the order they were added.
type Batch struct {
	e       *Engine
	results []Result
	errs    []error
	pending []*pendingStep
}

// NewBatch starts a batch. Without a BatchCommitter its Add handles each
// payload completely, as Handle does, and Commit only reports.
func (e *Engine) NewBatch() *Batch { return &Batch{e: e} }

// Add runs payload's acquire and actions. Its commit waits for Commit.
func (b *Batch) Add(ctx context.Context, payload []byte) {
	var (
		p   *pendingStep
		res Result
		err error
	)
	if b.e.batcher == nil {
		res, err = b.e.handle(ctx, payload, "", nil)
	} else {
		p, res, err = b.e.prepare(ctx, payload, "", nil, true)
	}
	b.results = append(b.results, res)
	b.errs = append(b.errs, err)
	b.pending = append(b.pending, p)
}

// Len is the number of payloads added.
func (b *Batch) Len() int { return len(b.results) }

// Commit writes the steps that are still to be committed, in one
// CommitSteps call, and returns each payload's Result and error as Handle
// would have returned them.
func (b *Batch) Commit(ctx context.Context) ([]Result, []error) {
	var steps []StepCommit
	var idx []int
	for i, p := range b.pending {
		if p != nil {
			steps = append(steps, StepCommit{Commit: p.c, Out: p.out, Ack: p.ack})
			idx = append(idx, i)
		}
	}
	if len(steps) == 0 {
		return b.results, b.errs
	}
	errs := b.e.batcher.CommitSteps(ctx, steps)
	for j, i := range idx {
		b.results[i], b.errs[i] = b.e.finish(ctx, b.pending[i], errs[j])
		b.pending[i] = nil
	}
	return b.results, b.errs
}

// HandleBatch handles payloads as Handle does each, but commits their steps
// together when the Store is a BatchCommitter: every acquire and every
// step's actions first, then one batched commit. It returns each payload's
// Result and error, in order.
func (e *Engine) HandleBatch(ctx context.Context, payloads [][]byte) ([]Result, []error) {
	b := e.NewBatch()
	for _, p := range payloads {
		b.Add(ctx, p)
	}
	return b.Commit(ctx)
}
