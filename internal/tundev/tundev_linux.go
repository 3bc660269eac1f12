// Package tundev creates the TUN devices that 6to4 and Teredo run over.
//
// It opens /dev/net/tun and does the ioctls itself, with aligned requests
// from unix.NewIfreq, and hands the file to wireguard-go's tun package
// without its monitor. wireguard-go's CreateTUN and CreateTUNFromFile
// both read the interface index out of a byte array with an unaligned
// int32 load (getIFIndex), which dies with SIGBUS on mips and mipsle: the
// routers this binary is for.
package tundev

import (
	"fmt"

	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/tun"
)

// Open creates the TUN device name (or attaches to it, if it persists),
// sets its MTU and brings it up. The device goes when the returned Device
// is closed. Packets are read and written without a packet-info header;
// the kernel's offloads (IFF_VNET_HDR) are used when it has them.
func Open(name string, mtu int) (tun.Device, error) {
	if len(name) >= unix.IFNAMSIZ {
		return nil, fmt.Errorf("tundev: name %q too long", name)
	}
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("tundev: open /dev/net/tun: %w", err)
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("tundev: %w", err)
	}
	ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI | unix.IFF_VNET_HDR)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		// Old kernels, and qemu-user, may refuse the offload header.
		ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
		if err2 := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err2 != nil {
			unix.Close(fd)
			return nil, fmt.Errorf("tundev: TUNSETIFF %s: %w", name, err2)
		}
	}
	dev, got, err := tun.CreateUnmonitoredTUNFromFD(fd)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("tundev: %w", err)
	}
	if err := setMTUAndUp(got, mtu); err != nil {
		dev.Close()
		return nil, err
	}
	return dev, nil
}

// setMTUAndUp configures the link with plain ioctls on aligned requests.
func setMTUAndUp(name string, mtu int) error {
	s, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("tundev: %w", err)
	}
	defer unix.Close(s)
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return fmt.Errorf("tundev: %w", err)
	}
	if mtu > 0 {
		ifr.SetUint32(uint32(mtu))
		if err := unix.IoctlIfreq(s, unix.SIOCSIFMTU, ifr); err != nil {
			return fmt.Errorf("tundev: set MTU of %s: %w", name, err)
		}
	}
	if err := unix.IoctlIfreq(s, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("tundev: flags of %s: %w", name, err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(s, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("tundev: bring %s up: %w", name, err)
	}
	return nil
}

// Index returns the interface index of name, read with an aligned request.
func Index(name string) (int, error) {
	s, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("tundev: %w", err)
	}
	defer unix.Close(s)
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return 0, fmt.Errorf("tundev: %w", err)
	}
	if err := unix.IoctlIfreq(s, unix.SIOCGIFINDEX, ifr); err != nil {
		return 0, fmt.Errorf("tundev: index of %s: %w", name, err)
	}
	return int(ifr.Uint32()), nil
}
