# Merged over consul-template.hcl by the consul-k8s component (a second -config): TLS to the
# Consul servers (CONSUL_HTTP_ADDR, set in the Deployment patch, names them), and reads that any
# server may answer, so that one blocking query per service spreads over the servers instead of
# all landing on the leader (docs/deploying.md, "Large catalogs and Consul load").

# Serve a read from any server whose data is at most this old (Consul's ?stale); beyond it,
# consul-template asks the leader.
max_stale = "2m"

consul {
  ssl {
    enabled = true
    verify  = true
    ca_cert = "/etc/consul-ca/tls.crt"
    # consul-k8s's server certificates name server.<datacenter>.<domain>.
    server_name = "server.dc1.consul"
  }
}
