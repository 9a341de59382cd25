package config

import _ "embed"

//go:embed schema.json
var schema []byte

// Schema returns the JSON Schema of lfsm.yaml, for editors (lfsm schema
// --settings). TestSchemaCoversKeys keeps it in step with Keys and AWSKeys.
func Schema() []byte { return schema }
