import ProvisionBootloader
import ProvisionPluginAPI
import ProvisionDevices
import ProvisionFiles
import ProvisionInitrd
import ProvisionLibvirt
import ProvisionModprobe
import ProvisionROM
import ProvisionSystem
import ProvisionTuning

/// Every step kind that ships with provision.
public let builtinRegistry = PluginRegistry(fileSteps + initrdSteps + modprobeSteps + bootloaderSteps + deviceSteps + romSteps + systemSteps + libvirtSteps + tuningSteps)
