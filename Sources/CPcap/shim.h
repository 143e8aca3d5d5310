#ifndef MBMS_CPCAP_SHIM_H
#define MBMS_CPCAP_SHIM_H
#include <pcap/pcap.h>
#endif
