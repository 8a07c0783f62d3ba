#!/usr/bin/env bash
# The PHP bench setup shared by bench/compare.sh (section 6) and bench/ab_php.sh: writes
# into DIR the script www/hello.php, a php-fpm pool config (fpm.conf: 4 static workers on
# the Unix socket DIR/fpm.sock, run as root when the caller is root) and an nginx config
# (nginx.conf: one worker on 127.0.0.1:NPORT, a keep-alive upstream to the pool with
# fastcgi_keep_conn). Prints the flag php-fpm needs to run as root (-R), or nothing.
#
#   root_flag=$(bash bench/php_confs.sh DIR NPORT)
set -eu
. "$(dirname "$0")/nginx_head.sh"
dir=$1
nport=$2
mkdir -p "$dir/www"
printf '<?php echo "Hello, world!";\n' >"$dir/www/hello.php"
root_flag="" pool_user=""
if [ "$(id -u)" = 0 ]; then root_flag=-R; pool_user=$'user = root\ngroup = root'; fi
cat >"$dir/fpm.conf" <<CONF
[global]
error_log = $dir/fpm.log
pid = $dir/fpm.pid
daemonize = no
[bench]
$pool_user
listen = $dir/fpm.sock
pm = static
pm.max_children = 4
clear_env = yes
CONF
{ nginx_head "$dir" nginx; cat <<CONF; } >"$dir/nginx.conf"
  upstream php { server unix:$dir/fpm.sock; keepalive 4; }
  server {
    listen 127.0.0.1:$nport;
    root $dir/www;
    location ~ \.php\$ {
      include /etc/nginx/fastcgi_params;
      fastcgi_param SCRIPT_FILENAME \$document_root\$fastcgi_script_name;
      fastcgi_keep_conn on;
      fastcgi_pass php;
    }
  }
}
CONF
echo "$root_flag"
