# Two commands set everything up on a fresh Debian/Ubuntu machine (see README.md):
#   make iso    build the tools and the rescue image of this machine
#   make test   install what the tests need, then run them all

SHELL := /bin/bash
CARGO ?= cargo
TARGET := x86_64-unknown-linux-gnu
# rear-restore runs as /init of the rescue system: it must be static (no PT_INTERP).
STATIC_RUSTFLAGS := -C target-feature=+crt-static
BIN_DIR := target/$(TARGET)/release
OUT ?= output
ENSURE := .ci/ensure-packages

# Needed to build: a C compiler for zstd/liblzma/sqlite, a kernel to put on the media, the
# boot loaders the media are made with (ISOLINUX/SYSLINUX for BIOS, GRUB for UEFI), and ip(8),
# which reads the network of the host.
BUILD_PACKAGES := gcc libc6-dev make kernel isolinux syslinux syslinux-common mtools \
	grub-common grub-efi-amd64-bin dosfstools e2fsprogs fdisk iproute2
# Needed by the tests: QEMU and firmware, the real tools the tests compare against,
# python3 (its smtplib is the SMTP client of the mail tests; its pip installs moto, the S3
# server of the S3 media tests), headless Chromium with its WebDriver for the GUI tests
# (tests/server/browser.rs), and PostgreSQL (the server tests start a private cluster of it).
TEST_PACKAGES := $(BUILD_PACKAGES) qemu-system-x86 ovmf cpio kmod zstd xz-utils gzip \
	initramfs-tools gdisk xorriso openssh-server openssh-client mount pxelinux \
	mdadm lvm2 cryptsetup-bin btrfs-progs xfsprogs thin-provisioning-tools \
	python3 python3-pip chromium chromium-driver postgresql debootstrap qemu-utils \
	tar acl attr restic borgbackup rsync

.PHONY: all iso build static deps-build deps-test ensure-test test fmt-check clippy crate-deps unit servertest vmtest bench bench-server clean

all: build

deps-build:
	@$(ENSURE) $(BUILD_PACKAGES)
	@command -v $(CARGO) >/dev/null || { echo "error: cargo not found: install Rust (https://rustup.rs)" >&2; exit 1; }

# The S3 media tests of tests/server need moto's S3-compatible server (PyPI, not packaged by
# Debian); `cargo test` runs them with the rest.
deps-test:
	@$(ENSURE) $(TEST_PACKAGES)
	@command -v $(CARGO) >/dev/null || { echo "error: cargo not found: install Rust (https://rustup.rs)" >&2; exit 1; }
	@python3 -c 'import moto.server' 2>/dev/null || \
		PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install --quiet 'moto[server]'
	@python3 -c 'import moto.server' || { echo "error: moto did not install (pip install 'moto[server]')" >&2; exit 1; }

# .ci/ensure-packages itself, against this machine's apt-get and dpkg (root): absent and present
# packages, an unknown one, an install that would remove a package, a local version that
# breaks another package.
ensure-test:
	.ci/test-ensure-packages

# rear-mkimage and rear-restore, statically linked, for the image and for installing; each
# package built on its own, so that rear-restore links only its own dependencies' features.
static:
	RUSTFLAGS="$(STATIC_RUSTFLAGS)" $(CARGO) build --release --locked --target $(TARGET) -p rear-restore
	RUSTFLAGS="$(STATIC_RUSTFLAGS)" $(CARGO) build --release --locked --target $(TARGET) -p rear-mkimage

build: deps-build static

# The rescue media of this machine: hybrid ISO plus kernel and initrd, into $(OUT)/.
# Where the disks cannot be probed (the layout capture fails, for instance a VM whose raw disk
# is EPERM even for root), it says so loudly and builds a rescue-only image (--layout none):
# see README.md, "When the disks cannot be probed".
iso: build
	@if $(BIN_DIR)/rear-mkimage layout save >/dev/null; then \
		echo "$(BIN_DIR)/rear-mkimage --output iso,initrd --out $(OUT)"; \
		$(BIN_DIR)/rear-mkimage --output iso,initrd --out $(OUT); \
	else \
		echo "********************************************************************************" >&2; \
		echo "WARNING: the disk layout of this machine cannot be captured (the error above)." >&2; \
		echo "WARNING: building a RESCUE-ONLY image (--layout none): it boots and brings the" >&2; \
		echo "WARNING: tools, but it CANNOT RECREATE THE DISKS of this machine." >&2; \
		echo "********************************************************************************" >&2; \
		echo "$(BIN_DIR)/rear-mkimage --output iso,initrd --out $(OUT) --layout none"; \
		$(BIN_DIR)/rear-mkimage --output iso,initrd --out $(OUT) --layout none; \
	fi

fmt-check:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --locked --workspace --all-targets --features vmtest -- -D warnings

# Each program links only what it needs (STYLE.md §2.11): the static PID 1 no async runtime,
# TLS, ISO writer or ELF reader; the server no compressor of the build side.
RESTORE_FORBIDDEN := tokio axum hyper rustls ring goblin hadris-cpio hadris-fat hadris-fs \
	hadris-io hadris-iso hadris-storage rusqlite postgres
SERVER_FORBIDDEN := liblzma liblzma-sys zstd zstd-sys
crate-deps:
	@tree=$$($(CARGO) tree --locked -p rear-restore -e normal --prefix none); \
	for c in $(RESTORE_FORBIDDEN); do \
		if grep -q "^$$c v" <<<"$$tree"; then echo "error: rear-restore depends on $$c:" >&2; \
			$(CARGO) tree --locked -p rear-restore -e normal -i $$c >&2; exit 1; fi; done
	@tree=$$($(CARGO) tree --locked -p rear-server --prefix none); \
	for c in $(SERVER_FORBIDDEN); do \
		if grep -q "^$$c v" <<<"$$tree"; then echo "error: rear-server depends on $$c:" >&2; \
			$(CARGO) tree --locked -p rear-server -i $$c >&2; exit 1; fi; done
	@echo "crate-deps: rear-restore has none of $(RESTORE_FORBIDDEN); rear-server has none of $(SERVER_FORBIDDEN)"

# Unit tests, the CLI tests of each program (tests/it), rear-server against real HTTP
# requests on 127.0.0.1 with SQLite, PostgreSQL and Chromium (tests/server).
unit:
	$(CARGO) test --locked

# The server's system tests alone (also part of `unit`); they run the last built binaries.
servertest:
	$(CARGO) build --locked --bins
	$(CARGO) test --locked --test server

# Debian's Microsoft-signed shim and signed GRUB, unpacked (not installed: installed, they
# would make every test ISO use them) for the Secure Boot test.
SIGNED_ROOT := target/signed/root
$(SIGNED_ROOT):
	rm -rf target/signed && mkdir -p target/signed
	cd target/signed && { apt-get download shim-signed grub-efi-amd64-signed 2>/dev/null || \
		{ apt-get update -qq && apt-get download shim-signed grub-efi-amd64-signed; }; } >/dev/null
	for deb in target/signed/*.deb; do dpkg-deb -x "$$deb" $(SIGNED_ROOT); done

# QEMU boot tests; they use the static binaries.
vmtest: static $(SIGNED_ROOT)
	REAR_BIN_DIR=$(CURDIR)/$(BIN_DIR) REAR_SIGNED_ROOT=$(CURDIR)/$(SIGNED_ROOT) \
		$(CARGO) test --locked --features vmtest --test vm -- --test-threads=2

test: ensure-test deps-test fmt-check clippy crate-deps unit vmtest

bench: build
	@$(ENSURE) initramfs-tools bc rear xorriso qemu-system-x86 openssh-server openssh-client zstd tar
	bench/initrd.sh
	bench/restore.sh
	bench/iso.sh
	bench/boot.sh

# rear-server with 10,000 hosts on SQLite: seed, ingest over HTTP, page times (not a test).
bench-server:
	bench/server.sh

clean:
	$(CARGO) clean
	rm -rf $(OUT)
