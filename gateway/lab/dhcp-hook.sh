#!/bin/sh
# The lab's hook for dhclient (-sf), udhcpc (-s) and dhcpcd (-c): it only
# applies the address and the default route, and logs what the client got,
# one line per event, to /run/dhcp-hook.log (each lab host has its own
# /run). It never touches resolv.conf, other routes, the hostname or
# anything outside the interface. Lab.Lease reads the log.
ev="${reason:-$1}"
addr="${new_ip_address:-$ip}"
# dhclient: new_subnet_mask (dotted); dhcpcd: new_subnet_cidr; udhcpc: mask (bits)
mask="${new_subnet_cidr:-${mask:-$new_subnet_mask}}"
case "$ev" in
BOUND | RENEW | REBIND | REBOOT | bound | renew)
	[ -n "$addr" ] && ip addr replace "$addr/$mask" dev "$interface"
	gw="${new_routers:-$router}"
	[ -n "$gw" ] && ip route replace default via "${gw%% *}" dev "$interface"
	;;
RELEASE | EXPIRE | STOP | deconfig)
	[ -n "$interface" ] && ip -4 addr flush dev "$interface" scope global
	;;
esac
# Logged once applied: a reader that sees the lease finds the address
# and the route in place.
{
	printf 'event=%s time=%s iface=%s addr=%s mask=%s router=%s dns=%s domain=%s lease=%s mtu=%s routes=%s hostname=%s\n' \
		"$ev" "$(date +%s)" "$interface" "$addr" "$mask" "${new_routers:-$router}" \
		"${new_domain_name_servers:-$dns}" "${new_domain_name:-$domain}" \
		"${new_dhcp_lease_time:-$lease}" "${new_interface_mtu:-$mtu}" \
		"${new_classless_static_routes:-${new_rfc3442_classless_static_routes:-$staticroutes}}" \
		"${new_host_name:-$hostname}"
} >>/run/dhcp-hook.log
exit 0
