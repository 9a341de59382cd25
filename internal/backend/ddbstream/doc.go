// Package ddbstream reads a DynamoDB table's stream (the DynamoDB Streams
// service) the way Lambda's event source mapping does, for lfsm dev
// --target aws and the tests of the DynamoDB-stream dispatch. The dispatch
// itself, the items its stream carries and the commit that writes them in
// one transaction are the DynamoDB store's (internal/backend/dynamodb:
// StreamQueue), because the store must write the message in the commit's
// own transaction; this package is only the receive side.
package ddbstream
