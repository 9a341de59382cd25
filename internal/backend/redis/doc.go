// Package redis is the lease cache (leasecache.Cache) on Redis or Valkey,
// ElastiCache's engines: one hash per execution, keyed with the
// execution's id as the hash tag (so that in cluster mode every key of one
// execution lives in one slot), changed only by Lua scripts, so that the
// acquire rule, the fence increment and the done marker are each one atomic
// step on the server. See docs/design.md, "Lease caches".
package redis
