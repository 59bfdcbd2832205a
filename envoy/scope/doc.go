// Package scope keeps the incident scope of a node: a bounded table of the
// tokens it has recently allowed or denied, with who they belong to (issuer,
// subject, session, key) and where they are used (source addresses, user
// agents, routes). It answers "which live tokens does this user, session,
// key or address have, and where are they used from", and with a Shared
// store (Redis, wired by the node) the answer covers every node of a mesh.
//
// The Table is an envoy.Observer: Observe copies the event into a bounded
// queue (a full queue drops and counts) and one worker updates the table
// off the hot path. Memory is bounded by entry count and by accounted
// bytes; a flood of distinct tokens evicts the least recently seen, and
// entries disappear once their token has expired.
package scope
