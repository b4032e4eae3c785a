# The same image for a machine with a Docker engine but no registry (nothing can be pulled):
# `docker/build-offline.sh` copies the host-built binary and the shared libraries it links
# (from `ldd`) into docker/rootfs, and this file puts exactly that into an empty image.
FROM scratch
COPY rootfs/ /
# Containers talk over the compose network, never loopback: protected mode would refuse
# them all. As Redis's official image, the image turns it off; publish ports with care.
ENV INFRALAB_PROTECTED_MODE=no
ENTRYPOINT ["/usr/local/bin/infralab"]
