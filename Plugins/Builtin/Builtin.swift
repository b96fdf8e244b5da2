import ProvisionBootloader
import ProvisionCore
import ProvisionDevices
import ProvisionFiles
import ProvisionInitrd
import ProvisionModprobe
import ProvisionROM

/// Every step kind that ships with provision.
public let builtinRegistry = PluginRegistry(fileSteps + initrdSteps + modprobeSteps + bootloaderSteps + deviceSteps + romSteps)
