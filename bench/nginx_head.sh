# Sourced by bench/compare.sh and bench/php_confs.sh.
#
# nginx_head DIR NAME: prints the start of an nginx config for the benchmarks: in the
# foreground, one worker process, its pid and error log at DIR/NAME.pid and DIR/NAME.err,
# its temporary files under DIR, no access log, and the `http {` block opened (the caller
# writes the rest and closes it).
nginx_head() {
  cat <<CONF
daemon off;
master_process off;
worker_processes 1;
pid $1/$2.pid;
error_log $1/$2.err;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $1/nginx-body;
  fastcgi_temp_path $1/nginx-fastcgi;
  proxy_temp_path $1/nginx-proxy;
  uwsgi_temp_path $1/nginx-uwsgi;
  scgi_temp_path $1/nginx-scgi;
  keepalive_requests 100000;
CONF
}
