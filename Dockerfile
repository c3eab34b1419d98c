# fedtl container images (README.md, section "docker-compose").
#
#   build    Debian bookworm with the -dev packages of scripts/deps.sh: compiles fedtl,
#            fedtl-coordinator and fedtl-client (tests off) and strips them.
#   runtime  debian:bookworm-slim with only the three programs and their shared libraries,
#            running as the unprivileged user fedtl in /var/lib/fedtl. The branches run it.
#   data     runtime + Debian's dataset-fashion-mnist (/usr/share/datasets/fashion-mnist) and
#            docker/prepare.sh as fedtl-prepare. The prepare and coordinator services run it
#            (the coordinator evaluates on the Fashion-MNIST test set).
#
#   docker build --target runtime -t fedtl .
#   docker build --target data -t fedtl-data .
#
# apt in every stage uses the image's own sources, or the Debian mirror given as the build
# argument APT_SOURCES (docker/apt-sources.sh; scripts/compose.sh passes the host's mirror).
#
# The build uses -march=x86-64-v2 (CMakeLists.txt, release builds): build and run on x86-64.

FROM debian:bookworm AS build
ARG DEBIAN_FRONTEND=noninteractive
ARG APT_SOURCES=""
COPY docker/apt-sources.sh /usr/local/sbin/fedtl-apt-sources
RUN fedtl-apt-sources \
 && apt-get update \
 && apt-get install -y --no-install-recommends \
        build-essential cmake pkg-config libzmq3-dev libprotobuf-c-dev protobuf-c-compiler \
        libopenblas-dev libsodium-dev zlib1g-dev libinih-dev libcjson-dev libmicrohttpd-dev \
        libpng-dev libjpeg62-turbo-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cmake -S . -B /build -DFEDTL_TESTS=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo \
 && cmake --build /build -j"$(nproc)" --target fedtl fedtl-coordinator fedtl-client \
 && install -d /out \
 && install -m 0755 -s /build/fedtl /build/fedtl-coordinator /build/fedtl-client /out/

# Runtime libraries, from `ldd` on the programs and `dpkg -S` on each library:
#   libzmq.so.5 libzmq5, libprotobuf-c.so.1 libprotobuf-c1, libopenblas.so.0
#   libopenblas0-pthread, libsodium.so.23 libsodium23, libz.so.1 zlib1g, libinih.so.1 libinih1,
#   libcjson.so.1 libcjson1, libmicrohttpd.so.12 libmicrohttpd12, libpng16.so.16 libpng16-16,
#   libjpeg.so.62 libjpeg62-turbo
# (libc, libm: libc6; the rest are these packages' own dependencies; no OpenMP).
FROM debian:bookworm-slim AS runtime
ARG DEBIAN_FRONTEND=noninteractive
ARG APT_SOURCES=""
COPY docker/apt-sources.sh /usr/local/sbin/fedtl-apt-sources
RUN fedtl-apt-sources \
 && apt-get update \
 && apt-get install -y --no-install-recommends \
        libzmq5 libprotobuf-c1 libopenblas0-pthread libsodium23 zlib1g libinih1 libcjson1 \
        libmicrohttpd12 libpng16-16 libjpeg62-turbo \
 && rm -rf /var/lib/apt/lists/*
# The mount points exist in the image, owned by fedtl, so that a fresh named volume mounted
# there starts out owned by fedtl (Docker copies the directory's owner into an empty volume).
# User and group fedtl are both 10001.
RUN groupadd --system --gid 10001 fedtl \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/fedtl \
        --shell /usr/sbin/nologin fedtl \
 && install -d -o fedtl -g fedtl -m 0750 /var/lib/fedtl \
 && install -d -o fedtl -g fedtl -m 0700 /var/lib/fedtl/keys /var/lib/fedtl/state \
        /var/lib/fedtl/branch /var/lib/fedtl/work \
 && install -d -o fedtl -g fedtl -m 0750 /var/lib/fedtl/allow /var/lib/fedtl/base \
        /var/lib/fedtl/branches
COPY --from=build /out/ /usr/local/bin/
USER fedtl
WORKDIR /var/lib/fedtl
ENV OPENBLAS_NUM_THREADS=1
CMD ["fedtl", "--help"]

FROM runtime AS data
ARG DEBIAN_FRONTEND=noninteractive
USER root
RUN apt-get update \
 && apt-get install -y --no-install-recommends dataset-fashion-mnist \
 && rm -rf /var/lib/apt/lists/*
COPY docker/prepare.sh /usr/local/bin/fedtl-prepare
RUN chmod 0755 /usr/local/bin/fedtl-prepare
# fedtl-prepare started as root (the prepare service) gives the volumes to this user, then
# drops to it; started as fedtl it just runs.
ENV FEDTL_USER=fedtl
USER fedtl
