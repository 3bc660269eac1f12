# Stand-ins for what OpenWrt gives an init script (rc.common, functions.sh,
# procd.sh, uci), for build/initscript_test.go. Each records its call in
# $CALLS. UCI config files are shell (config/option/list lines), which is how
# config_load reads them; `uci` works on a key=value store in $UCI_STORE.

rec() { echo "$*" >>"$CALLS"; }

procd_open_instance() { rec "procd_open_instance $*"; }
procd_set_param() { rec "procd_set_param $*"; }
procd_close_instance() { rec "procd_close_instance"; }
procd_add_reload_trigger() { rec "procd_add_reload_trigger $*"; }
procd_send_signal() { rec "procd_send_signal $*"; }
procd_running() { rec "procd_running $*"; return 0; }
start() { rec "start"; }
stop() { rec "stop"; }
restart() { rec "restart"; }
logger() { rec "logger $*"; }

# functions.sh: config_load, config_get, config_get_bool, config_foreach.
config() {
	_n=$((_n + 1))
	CONFIG_SECTION=${2:-cfg$_n}
	CONFIG_SECTIONS="$CONFIG_SECTIONS $CONFIG_SECTION"
	eval "CONFIG_${CONFIG_SECTION}_TYPE=\$1"
}
option() {
	_o=$1
	shift
	eval "CONFIG_${CONFIG_SECTION}_${_o}=\$*"
}
list() {
	_o=$1
	shift
	eval "CONFIG_${CONFIG_SECTION}_${_o}=\"\${CONFIG_${CONFIG_SECTION}_${_o}:+\$CONFIG_${CONFIG_SECTION}_${_o} }\$*\""
}
config_load() {
	for s in $CONFIG_SECTIONS; do unset "CONFIG_${s}_TYPE"; done
	CONFIG_SECTIONS= _n=0
	. "$CONF"
}
config_get() {
	eval "$1=\${CONFIG_${2}_${3}:-\$4}"
}
config_get_bool() {
	config_get _b "$2" "$3" "$4"
	case "$_b" in
	1 | on | true | yes | enabled) _b=1 ;;
	0 | off | false | no | disabled) _b=0 ;;
	*) _b=$4 ;;
	esac
	eval "$1=\$_b"
}
config_foreach() {
	_fn=$1
	_type=$2
	for s in $CONFIG_SECTIONS; do
		eval "_t=\$CONFIG_${s}_TYPE"
		[ "$_t" = "$_type" ] && "$_fn" "$s"
	done
	return 0
}

# uci: show PACKAGE, get, set, delete, commit; -q is accepted and ignored.
uci() {
	[ "$1" = -q ] && shift
	case $1 in
	show) grep "^$2\." "$UCI_STORE" | sed "s/^\([^=]*\)=\(.*\)/\1='\2'/; s/^\([^=]*\)='interface'$/\1=interface/; s/^\([^=]*\)='dhcp'$/\1=dhcp/" ;;
	get) grep "^$2=" "$UCI_STORE" | head -1 | cut -d= -f2- | grep . ;;
	set)
		rec "uci set $2"
		grep -v "^${2%%=*}=" "$UCI_STORE" >"$UCI_STORE.new"
		echo "$2" >>"$UCI_STORE.new"
		mv "$UCI_STORE.new" "$UCI_STORE"
		;;
	delete)
		rec "uci delete $2"
		grep -v "^$2=" "$UCI_STORE" >"$UCI_STORE.new"
		mv "$UCI_STORE.new" "$UCI_STORE"
		;;
	commit) rec "uci commit $2" ;;
	esac
}
