package pd

// SkipRelease makes c's Run return without a Release, as a crash would
// leave things: the lab test restarts a client over a remembered lease.
func SkipRelease(c *Client) { c.skipRelease = true }
