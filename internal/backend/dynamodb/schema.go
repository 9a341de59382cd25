package dynamodb

// Schema describes the store's table for whoever creates it outside this
// package: internal/deploy renders it into the stack's template, so the
// deployed table is exactly the one CreateTable makes (a test compares
// them). Every key attribute is a string.
type Schema struct {
	// PartitionKey and SortKey are the table's key attributes.
	PartitionKey, SortKey string
	// Indexes are the global secondary indexes, keys only.
	Indexes []IndexSchema
	// TTL is the attribute DynamoDB expires items by (unix seconds).
	TTL string
}

// IndexSchema is one global secondary index.
type IndexSchema struct {
	Name, PartitionKey, SortKey string
	// Projection is DynamoDB's projection type (KEYS_ONLY).
	Projection string
}

// TableSchema returns the store table's schema.
func TableSchema() Schema {
	ix := func(name, pk string) IndexSchema {
		return IndexSchema{Name: name, PartitionKey: pk, SortKey: attrGC, Projection: "KEYS_ONLY"}
	}
	return Schema{
		PartitionKey: attrPK, SortKey: attrSK,
		Indexes: []IndexSchema{ix(indexMachine, attrGM), ix(indexStatus, attrGS), ix(indexShard, attrGA)},
		TTL:     ttlAttr,
	}
}
