// Package lambdanum numbers the Lambda invocations of a machine: which actions
// run in which AWS Lambda invocation, λ1, λ2, ... (REFERENCE.md §2), computed
// by [Lambdas] from the spec model alone.
//
// The numbering is model knowledge that the runtime and the drawing share: the
// local runtime's λ lines (internal/local) and the diagrams and listing
// (internal/graph) must name the same λ. It lives here, apart from both, so that
// the runtime links no drawing code: this package imports nothing but the spec
// model and the standard library.
package lambdanum
