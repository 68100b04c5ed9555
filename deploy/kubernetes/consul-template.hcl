# consul-template configuration for the keyrouter pod (mounted from the ConfigMap that
# kustomization.yaml generates). Consul's address comes from the CONSUL_HTTP_ADDR environment
# variable (see deployment.yaml); an ACL token, if your Consul needs one, from CONSUL_HTTP_TOKEN.

log_level = "info"

# Quiescence: wait until the catalog has been still for 2s (at most 10s) before rendering, so a
# rollout of a service with many instances is one reload of keyrouter, not one per instance.
wait {
  min = "2s"
  max = "10s"
}

consul {
  # When Consul stays unreachable, give up after the retries and exit: the kubelet restarts the
  # sidecar (visible in its restart count) while keyrouter keeps serving the last rendered file.
  retry {
    enabled     = true
    attempts    = 12
    backoff     = "250ms"
    max_backoff = "1m"
  }
}

template {
  source      = "/etc/consul-template/services.toml.tmpl"
  destination = "/etc/keyrouter/services.toml"
  perms       = 0644

  # A field consul-template does not have is an error, not the text "<no value>" in the file.
  error_on_missing_key = true

  # No command: keyrouter runs with --watch and reloads when the rendered file is renamed into
  # place, so the pod needs no shared process namespace and no signal between containers.
}
