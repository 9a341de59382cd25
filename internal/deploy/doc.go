// Package deploy turns a spec and the project's AWS settings into one
// desired-resource model (Build), and renders that model as a CloudFormation
// template (Model.Template) with a least-privilege IAM role.
//
// lfsm does not provision anything itself: CloudFormation orders the
// resources, waits for them, rolls a failed update back and deletes what it
// created. This package only says what should exist; the change-set flow that
// applies it lives beside it.
//
// The model is the contract between the deployment and the Lambda handler:
// the function's environment (Env* constants) and the stack's outputs
// (Output* constants) name every resource, so the handler and `aws.stack`
// find them without any other configuration. docs/design.md ("Deployment")
// records that contract and why the resources look as they do.
package deploy
