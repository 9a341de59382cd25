// Package actions holds the actions of the seed's Example machine
// (../fsm.yaml): thin shims that read the execution's context, call existing
// code (fancy.go stands for it) and return the next event.
//
// fsm.yaml can name three kinds of Go symbol, and this package shows each: a
// type whose value implements fsm.Action (Action1, Action4, Action9), a
// function with the action signature (Action2, Action5, Action7, Action8), and
// a package-level variable holding an action (Action3, Action6), which is
// where dependencies can be injected.
package actions

import (
	"context"
	"errors"
	"fmt"

	"github.com/lfsm/lfsm/fsm"
)

// Action1 is a type: its value implements fsm.Action.
type Action1 struct{}

// Execute is FirstState's entry action: it logs the execution's start.
func (Action1) Execute(ctx context.Context, c *fsm.Context) (string, error) {
	c.Logger().InfoContext(ctx, "execution started", "keys", c.Keys())
	return "", nil
}

// Action2 is a function, FirstState's do action: it calls myFancyFunction
// with the context's arg1 and stores the result under "mff" for later states.
func Action2(ctx context.Context, c *fsm.Context) (string, error) {
	arg1, ok := c.Int("arg1")
	if !ok {
		// Bad input: retrying will not help, so the execution fails at once.
		return "", fsm.Permanent(errors.New("context has no integer arg1"))
	}
	c.Set("mff", myFancyFunction(arg1))
	return "done", nil
}

// Action3 is a variable holding an action: FirstState's exit action.
var Action3 fsm.Action = fsm.ActionFunc(nothing)

// Action4 is SecondState's entry action.
type Action4 struct{}

// Execute does nothing.
func (Action4) Execute(ctx context.Context, c *fsm.Context) (string, error) {
	return "", nil
}

// Action5 is SecondState's do action: it reads what Action2 stored and
// passes it on to myOtherFancyFunction.
func Action5(ctx context.Context, c *fsm.Context) (string, error) {
	mff, ok := c.String("mff")
	if !ok {
		return "", fsm.Permanent(errors.New("context has no mff"))
	}
	if err := myOtherFancyFunction(mff); err != nil {
		return "", fmt.Errorf("my other fancy function: %w", err) // retried
	}
	return "done", nil
}

// Action6 is SecondState's exit action.
var Action6 fsm.Action = fsm.ActionFunc(nothing)

// Action7 is ThirdState's entry action.
func Action7(ctx context.Context, c *fsm.Context) (string, error) { return "", nil }

// Action8 is ThirdState's do action. ThirdState is final: returning no event
// lets the execution end after ThirdState's exit action.
func Action8(ctx context.Context, c *fsm.Context) (string, error) { return "", nil }

// Action9 is ThirdState's exit action, the last one to run.
type Action9 struct{}

// Execute does nothing.
func (Action9) Execute(ctx context.Context, c *fsm.Context) (string, error) {
	return "", nil
}

func nothing(ctx context.Context, c *fsm.Context) (string, error) { return "", nil }
