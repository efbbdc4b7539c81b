"""What operators see of the plane: Prometheus metrics (`metrics`: the plane's, read from
PostgreSQL by ``plane metrics``; `gateway_metrics`: the serving gateway's own ``/metrics``) and
structured logs (`logs`: ``PLANE_LOG_FORMAT=json``)."""
