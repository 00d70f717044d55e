//! Starts redis-server (standalone, ACL, TLS, cluster) for tests. (being written)
